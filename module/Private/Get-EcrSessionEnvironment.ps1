function Get-EcrSessionEnvironment {
    <#
    .SYNOPSIS
    Returns the record of the MFA session that Get-EcrMfaSession -SetEnvironment exported, or $null.

    .DESCRIPTION
    The record has Exported, the values set (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_SESSION_TOKEN and maybe AWS_REGION), Saved, the values they replaced, and ProfileName.
    It is kept in the application domain, not in the module, because the environment belongs to
    the process: it outlives Import-Module -Force and is shared by every runspace.

    A record whose credentials the process no longer holds, because something else changed
    the variables, is dropped and $null is returned.
    #>
    [CmdletBinding()]
    [OutputType([hashtable])]
    param()

    $record = [AppDomain]::CurrentDomain.GetData('EcrCompose.SessionEnvironment')
    if ($null -eq $record) {
        return $null
    }

    foreach ($name in 'AWS_ACCESS_KEY_ID', 'AWS_SESSION_TOKEN') {
        if ([Environment]::GetEnvironmentVariable($name) -cne $record.Exported[$name]) {
            Write-Debug "The environment no longer holds the exported MFA session: $name was changed."
            [AppDomain]::CurrentDomain.SetData('EcrCompose.SessionEnvironment', $null)
            return $null
        }
    }

    return $record
}
