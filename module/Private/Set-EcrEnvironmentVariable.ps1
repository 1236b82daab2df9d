function Set-EcrEnvironmentVariable {
    <#
    .SYNOPSIS
    Sets the process environment variables of a hashtable; a $null or empty value removes the variable.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param(
        [Parameter(Mandatory)]
        [hashtable] $Values
    )

    foreach ($name in $Values.Keys) {
        $value = $Values[$name]
        if ([string]::IsNullOrEmpty($value)) {
            $value = $null
        }

        if ($PSCmdlet.ShouldProcess($name, 'Set the environment variable')) {
            [Environment]::SetEnvironmentVariable($name, $value)
        }
    }
}
