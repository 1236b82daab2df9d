function Restore-EcrSessionEnvironment {
    <#
    .SYNOPSIS
    Puts back the environment variables that Get-EcrMfaSession -SetEnvironment replaced.

    .DESCRIPTION
    Does nothing when no session is exported, or when ProfileName is given and the exported
    session belongs to another profile. Variables that were unset before the export are
    removed. Returns $true when it restored the variables.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType([bool])]
    param(
        [AllowEmptyString()]
        [string] $ProfileName
    )

    $record = Get-EcrSessionEnvironment
    if ($null -eq $record -or ($ProfileName -and $record.ProfileName -ne $ProfileName)) {
        return $false
    }

    $names = @($record.Saved.Keys | Sort-Object) -join ', '
    if (-not $PSCmdlet.ShouldProcess($names, 'Restore the values from before Get-EcrMfaSession -SetEnvironment')) {
        return $false
    }

    Set-EcrEnvironmentVariable -Values $record.Saved -WhatIf:$false -Confirm:$false
    [AppDomain]::CurrentDomain.SetData('EcrCompose.SessionEnvironment', $null)
    Write-Verbose "Restored $names to the values from before Get-EcrMfaSession -SetEnvironment."
    return $true
}
