function New-EcrAwsOptions {
    <#
    .SYNOPSIS
    Builds the aws object of a request from the cmdlet parameters and an optional MFA session.

    .DESCRIPTION
    Only the values that were given are sent; the library falls back to AWS_PROFILE, AWS_REGION,
    AWS_ENDPOINT_URL and the shared config files for the others. The region of a session is used
    when no Region is given.
    #>
    [CmdletBinding()]
    [OutputType([hashtable])]
    param(
        [AllowEmptyString()]
        [string] $ProfileName,

        [AllowEmptyString()]
        [string] $Region,

        [AllowEmptyString()]
        [string] $EndpointUrl,

        [AllowNull()]
        [EcrCompose.MfaSession] $Session
    )

    $aws = @{}
    if ($ProfileName) {
        $aws.profile = $ProfileName
    }

    if ($Region) {
        $aws.region = $Region
    }
    elseif ($null -ne $Session -and $Session.Region) {
        $aws.region = $Session.Region
    }

    if ($EndpointUrl) {
        $aws.endpointUrl = $EndpointUrl
    }

    return $aws
}
