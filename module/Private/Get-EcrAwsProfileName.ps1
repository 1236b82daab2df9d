function Get-EcrAwsProfileName {
    <#
    .SYNOPSIS
    Returns the names of the profiles in the shared AWS config and credentials files, sorted.

    .DESCRIPTION
    Reads AWS_CONFIG_FILE (default ~/.aws/config), where profiles are [default] and
    [profile NAME], and AWS_SHARED_CREDENTIALS_FILE (default ~/.aws/credentials), where they are
    [NAME]. Other sections of the config file, such as [sso-session NAME] and [services NAME],
    are not profiles. A missing or unreadable file adds no names.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param()

    $awsFolder = Join-Path -Path ([Environment]::GetFolderPath('UserProfile')) -ChildPath '.aws'
    $configFile = $env:AWS_CONFIG_FILE
    if (-not $configFile) {
        $configFile = Join-Path -Path $awsFolder -ChildPath 'config'
    }

    $credentialsFile = $env:AWS_SHARED_CREDENTIALS_FILE
    if (-not $credentialsFile) {
        $credentialsFile = Join-Path -Path $awsFolder -ChildPath 'credentials'
    }

    $names = [System.Collections.Generic.SortedSet[string]]::new([System.StringComparer]::Ordinal)
    foreach ($file in @(
            @{ Path = $configFile; Config = $true }
            @{ Path = $credentialsFile; Config = $false }
        )) {
        $lines = @()
        try {
            # ~ is expanded as the AWS CLI does; PowerShell would expand it only for its own paths.
            $path = $file.Path -replace '^~(?=$|[\\/])', [Environment]::GetFolderPath('UserProfile')
            if ([System.IO.File]::Exists($path)) {
                $lines = [System.IO.File]::ReadAllLines($path)
            }
        }
        catch {
            Write-Debug "Cannot read the AWS file '$($file.Path)': $($_.Exception.Message)"
        }

        foreach ($line in $lines) {
            if ($line -notmatch '^\s*\[\s*(?<section>[^\]]+?)\s*\]') {
                continue
            }

            $section = $Matches['section']
            if (-not $file.Config) {
                [void] $names.Add($section)
            }
            elseif ($section -eq 'default') {
                [void] $names.Add($section)
            }
            elseif ($section -match '^profile\s+(?<name>\S.*)$') {
                [void] $names.Add($Matches['name'])
            }
        }
    }

    return [string[]] @($names)
}
