function Clear-EcrMfaSession {
    <#
    .SYNOPSIS
    Removes cached MFA sessions.

    .DESCRIPTION
    Removes the sessions that Get-EcrMfaSession cached for one AWS profile, or for every profile
    when neither ProfileName nor Session is given. Run it when you leave a shared machine, or when
    a cached session was revoked before it expired. The next Get-EcrMfaSession then asks STS, and
    so needs a new MFA code.

    When Get-EcrMfaSession -SetEnvironment exported a session of a cleared profile to this
    process, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and AWS_REGION get back
    the values they had before, or are removed when they had none.

    Like other Clear commands, it writes no objects unless -PassThru is given; -Verbose reports
    how many sessions were removed.

    .PARAMETER ProfileName
    The AWS profile whose sessions are removed. Defaults to the profile of -Session, then to every
    profile.

    .PARAMETER Session
    A session from Get-EcrMfaSession: the sessions of its profile are removed. Accepted from the
    pipeline.

    .PARAMETER CachePath
    The folder of the session cache. Defaults to ECR_COMPOSE_CACHE_DIR, then to the user's cache
    folder.

    .PARAMETER PassThru
    Writes an EcrCompose.SessionCacheClearResult: the profile, how many sessions were removed and
    the path of the cache file.

    .EXAMPLE
    Clear-EcrMfaSession

    Removes every cached session, at the end of the day or before leaving a shared machine.

    .EXAMPLE
    $session | Clear-EcrMfaSession -PassThru

    Removes the cached sessions of the profile of $session and shows how many there were.

    .EXAMPLE
    Clear-EcrMfaSession -ProfileName dev -WhatIf

    Shows that the sessions of the profile dev would be removed, without removing them.

    .EXAMPLE
    Clear-EcrMfaSession -CachePath $env:RUNNER_TEMP/ecr-sessions

    In the last step of a CI job, removes the sessions that the job cached in its own folder.

    .INPUTS
    EcrCompose.MfaSession

    .OUTPUTS
    None, or EcrCompose.SessionCacheClearResult with -PassThru.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('EcrCompose.SessionCacheClearResult')]
    param(
        [ValidateNotNullOrEmpty()]
        [string] $ProfileName,

        [Parameter(ValueFromPipeline)]
        [EcrCompose.MfaSession] $Session,

        [ValidateNotNullOrEmpty()]
        [string] $CachePath,

        [switch] $PassThru
    )

    begin {
        # Windows PowerShell 5.1 turns -Debug into Inquire, which would stop at every log line.
        if ($DebugPreference -eq 'Inquire' -and $PSBoundParameters.ContainsKey('Debug')) {
            $DebugPreference = 'Continue'
        }
    }

    process {
        $awsProfile = $ProfileName
        if (-not $awsProfile -and $null -ne $Session) {
            $awsProfile = $Session.ProfileName
        }

        $request = @{}
        if ($awsProfile) {
            $request.profile = $awsProfile
        }

        if ($CachePath) {
            $request.dir = Resolve-EcrFileSystemPath -Path $CachePath -Cmdlet $PSCmdlet
        }

        $scope = if ($awsProfile) { "profile $awsProfile" } else { 'every profile' }
        if (-not $PSCmdlet.ShouldProcess("cached MFA sessions of $scope", 'Remove')) {
            return
        }

        $result = Invoke-EcrOperation -Operation cache-clear -Request $request -Cmdlet $PSCmdlet
        Write-Verbose "Removed $([int] $result.removed) cached MFA sessions of $scope from $($result.path)."
        $null = Restore-EcrSessionEnvironment -ProfileName $awsProfile -WhatIf:$false -Confirm:$false

        if ($PassThru) {
            [pscustomobject] @{
                PSTypeName = 'EcrCompose.SessionCacheClearResult'
                ProfileName = $awsProfile
                Removed = [int] $result.removed
                Path = $result.path
            }
        }
    }
}
