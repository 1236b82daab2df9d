function Clear-EcrMfaSession {
    <#
    .SYNOPSIS
    Removes cached MFA sessions.

    .DESCRIPTION
    Removes the sessions that Get-EcrMfaSession cached for one AWS profile, or for every profile
    when no ProfileName is given, and returns how many were removed. Run it when you leave a
    shared machine, or when a cached session was revoked before it expired.

    .PARAMETER ProfileName
    The AWS profile whose sessions are removed. Defaults to every profile.

    .PARAMETER CachePath
    The folder of the session cache. Defaults to ECR_COMPOSE_CACHE_DIR, then to the user's cache
    folder.

    .EXAMPLE
    Clear-EcrMfaSession

    Removes every cached session.

    .EXAMPLE
    Clear-EcrMfaSession -ProfileName dev -WhatIf

    Shows that the sessions of the profile dev would be removed, without removing them.

    .INPUTS
    None.

    .OUTPUTS
    EcrCompose.SessionCacheClearResult
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('EcrCompose.SessionCacheClearResult')]
    param(
        [ValidateNotNullOrEmpty()]
        [string] $ProfileName,

        [ValidateNotNullOrEmpty()]
        [string] $CachePath
    )

    $request = @{}
    if ($ProfileName) {
        $request.profile = $ProfileName
    }

    if ($CachePath) {
        $request.dir = Resolve-EcrFileSystemPath -Path $CachePath -Cmdlet $PSCmdlet
    }

    $scope = if ($ProfileName) { "profile $ProfileName" } else { 'every profile' }
    if (-not $PSCmdlet.ShouldProcess("cached MFA sessions of $scope", 'Remove')) {
        return
    }

    $result = Invoke-EcrOperation -Operation cache-clear -Request $request -Cmdlet $PSCmdlet
    [pscustomobject] @{
        PSTypeName = 'EcrCompose.SessionCacheClearResult'
        ProfileName = $ProfileName
        Removed = [int] $result.removed
        Path = $result.path
    }
}
