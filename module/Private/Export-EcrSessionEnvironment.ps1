function Export-EcrSessionEnvironment {
    <#
    .SYNOPSIS
    Sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and AWS_REGION of this process to an MFA session.

    .DESCRIPTION
    Other tools started from this process (the AWS CLI, docker compose, terraform) then use the
    session. The values they replace are saved with the first export, so that a later
    Get-EcrMfaSession can call STS with the long-term credentials again and
    Clear-EcrMfaSession can put them back. AWS_REGION is set only when the session has a region.
    No value is written to any stream.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param(
        [Parameter(Mandatory)]
        [EcrCompose.MfaSession] $Session
    )

    $exported = @{
        AWS_ACCESS_KEY_ID = $Session.AccessKeyId
        AWS_SECRET_ACCESS_KEY = $Session.SecretAccessKey
        AWS_SESSION_TOKEN = $Session.SessionToken
    }
    if ($Session.Region) {
        $exported.AWS_REGION = $Session.Region
    }

    $names = @($exported.Keys | Sort-Object)
    if (-not $PSCmdlet.ShouldProcess(($names -join ', '), "Set to the MFA session of account $($Session.AccountId)")) {
        return
    }

    $previous = Get-EcrSessionEnvironment
    $saved = @{}
    foreach ($name in 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION') {
        if ($null -ne $previous -and $previous.Saved.ContainsKey($name)) {
            $saved[$name] = $previous.Saved[$name]
        }
        elseif ($exported.ContainsKey($name)) {
            $saved[$name] = [Environment]::GetEnvironmentVariable($name)
        }
    }

    Set-EcrEnvironmentVariable -Values $exported -WhatIf:$false -Confirm:$false
    [AppDomain]::CurrentDomain.SetData('EcrCompose.SessionEnvironment', @{
            Exported = $exported
            Saved = $saved
            ProfileName = $Session.ProfileName
            AccountId = $Session.AccountId
        })
    Write-Verbose ("Set {0} of this process to the MFA session of account {1}, which expires at {2:u}." -f
        ($names -join ', '), $Session.AccountId, $Session.Expiration)
}
