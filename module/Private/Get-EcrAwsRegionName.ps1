function Get-EcrAwsRegionName {
    <#
    .SYNOPSIS
    Returns the AWS regions offered by tab completion, as an ordered dictionary of code and name.

    .DESCRIPTION
    The regions of the commercial (aws), China (aws-cn) and GovCloud (aws-us-gov) partitions, as
    listed by the partition data of aws-sdk-sts 1.124.0, which the library is built with. The
    list only feeds completion: -Region accepts any region code, so a newer region works before
    it is added here.
    #>
    [CmdletBinding()]
    [OutputType([System.Collections.Specialized.OrderedDictionary])]
    param()

    [ordered] @{
        'us-east-1' = 'US East (N. Virginia)'
        'us-east-2' = 'US East (Ohio)'
        'us-west-1' = 'US West (N. California)'
        'us-west-2' = 'US West (Oregon)'
        'af-south-1' = 'Africa (Cape Town)'
        'ap-east-1' = 'Asia Pacific (Hong Kong)'
        'ap-east-2' = 'Asia Pacific (Taipei)'
        'ap-northeast-1' = 'Asia Pacific (Tokyo)'
        'ap-northeast-2' = 'Asia Pacific (Seoul)'
        'ap-northeast-3' = 'Asia Pacific (Osaka)'
        'ap-south-1' = 'Asia Pacific (Mumbai)'
        'ap-south-2' = 'Asia Pacific (Hyderabad)'
        'ap-southeast-1' = 'Asia Pacific (Singapore)'
        'ap-southeast-2' = 'Asia Pacific (Sydney)'
        'ap-southeast-3' = 'Asia Pacific (Jakarta)'
        'ap-southeast-4' = 'Asia Pacific (Melbourne)'
        'ap-southeast-5' = 'Asia Pacific (Malaysia)'
        'ap-southeast-6' = 'Asia Pacific (New Zealand)'
        'ap-southeast-7' = 'Asia Pacific (Thailand)'
        'ca-central-1' = 'Canada (Central)'
        'ca-west-1' = 'Canada West (Calgary)'
        'eu-central-1' = 'Europe (Frankfurt)'
        'eu-central-2' = 'Europe (Zurich)'
        'eu-north-1' = 'Europe (Stockholm)'
        'eu-south-1' = 'Europe (Milan)'
        'eu-south-2' = 'Europe (Spain)'
        'eu-west-1' = 'Europe (Ireland)'
        'eu-west-2' = 'Europe (London)'
        'eu-west-3' = 'Europe (Paris)'
        'il-central-1' = 'Israel (Tel Aviv)'
        'me-central-1' = 'Middle East (UAE)'
        'me-south-1' = 'Middle East (Bahrain)'
        'mx-central-1' = 'Mexico (Central)'
        'sa-east-1' = 'South America (Sao Paulo)'
        'cn-north-1' = 'China (Beijing)'
        'cn-northwest-1' = 'China (Ningxia)'
        'us-gov-east-1' = 'AWS GovCloud (US-East)'
        'us-gov-west-1' = 'AWS GovCloud (US-West)'
    }
}
