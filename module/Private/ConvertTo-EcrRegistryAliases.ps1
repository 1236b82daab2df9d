function ConvertTo-EcrRegistryAliases {
    <#
    .SYNOPSIS
    Converts the RegistryAlias hashtable into the registryAliases object of a request.
    #>
    [CmdletBinding()]
    [OutputType([hashtable])]
    param(
        [Parameter(Mandatory)]
        [hashtable] $RegistryAlias
    )

    $aliases = @{}
    foreach ($key in $RegistryAlias.Keys) {
        $aliases[[string] $key] = [string] $RegistryAlias[$key]
    }

    return $aliases
}
