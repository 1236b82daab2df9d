function Resolve-EcrFileSystemPath {
    <#
    .SYNOPSIS
    Resolves a path against the PowerShell location ($PWD) and returns an absolute file-system path.

    .DESCRIPTION
    The native library resolves relative paths against the process working directory, which
    Set-Location does not change, so every path is made absolute here. The path does not have to
    exist; the library reports a missing file with its own error.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param(
        [Parameter(Mandatory)]
        [string] $Path,

        [Parameter(Mandatory)]
        [System.Management.Automation.PSCmdlet] $Cmdlet
    )

    $provider = $null
    $drive = $null
    $resolved = $Cmdlet.SessionState.Path.GetUnresolvedProviderPathFromPSPath($Path, [ref] $provider, [ref] $drive)
    if ($provider.Name -ne 'FileSystem') {
        $exception = [System.ArgumentException]::new(
            "The path '$Path' is on the $($provider.Name) provider; give a file-system path.")
        $Cmdlet.ThrowTerminatingError([System.Management.Automation.ErrorRecord]::new(
            $exception, 'PathNotFileSystem', 'InvalidArgument', $Path))
    }

    return $resolved
}
