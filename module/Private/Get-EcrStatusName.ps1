function Get-EcrStatusName {
    <#
    .SYNOPSIS
    Returns the name of an EcrStatus result code, as the library writes it in JSON.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param(
        [Parameter(Mandatory)]
        [int] $Status
    )

    # The values are fixed by the C ABI and never reused.
    $names = @(
        'Ok', 'InvalidArgument', 'InvalidRequest', 'Authentication', 'NotFound', 'Denied', 'Throttled',
        'Network', 'Cancelled', 'Timeout', 'Registry', 'Pending', 'AbiVersion', 'Internal', 'Panic'
    )
    if ($Status -ge 0 -and $Status -lt $names.Count) {
        return $names[$Status]
    }

    return 'Internal'
}
