function Get-EcrNativeLibraryPath {
    <#
    .SYNOPSIS
    Returns the absolute path of the native library that the module loads.

    .DESCRIPTION
    ECR_COMPOSE_LIBRARY, when set, wins: tests and developers point it at a library built by cargo.
    Otherwise the path is <module folder>/runtimes/<rid>/native/<file name of this OS>.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param()

    if ($env:ECR_COMPOSE_LIBRARY) {
        if (-not [System.IO.Path]::IsPathRooted($env:ECR_COMPOSE_LIBRARY)) {
            throw "ECR_COMPOSE_LIBRARY must be an absolute path, but it is '$env:ECR_COMPOSE_LIBRARY'."
        }

        return $env:ECR_COMPOSE_LIBRARY
    }

    $runtimeIdentifier = Get-EcrRuntimeIdentifier
    $fileName = switch -Wildcard ($runtimeIdentifier) {
        'win-*' { 'ecr_compose.dll' }
        'osx-*' { 'libecr_compose.dylib' }
        default { 'libecr_compose.so' }
    }

    $moduleRoot = Split-Path -Path $PSScriptRoot -Parent
    return [System.IO.Path]::Combine($moduleRoot, 'runtimes', $runtimeIdentifier, 'native', $fileName)
}
