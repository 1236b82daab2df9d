function Get-EcrRuntimeIdentifier {
    <#
    .SYNOPSIS
    Returns the .NET runtime identifier of this process, such as linux-x64 or win-arm64.

    .DESCRIPTION
    The identifier names the folder runtimes/<rid>/native that holds the native library for this
    operating system and CPU. The CPU is the one of the process, not of the machine, because a
    32-bit or emulated process can only load a library built for its own architecture.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param()

    if ($PSVersionTable.PSEdition -eq 'Desktop') {
        # Windows PowerShell 5.1 has no RuntimeInformation without an extra assembly.
        if (-not [Environment]::Is64BitProcess) {
            throw 'EcrCompose needs a 64-bit PowerShell process; start the 64-bit Windows PowerShell.'
        }

        if ($env:PROCESSOR_ARCHITECTURE -eq 'ARM64') {
            return 'win-arm64'
        }

        return 'win-x64'
    }

    $runtime = [System.Runtime.InteropServices.RuntimeInformation]
    $platform = [System.Runtime.InteropServices.OSPlatform]
    if ($runtime::IsOSPlatform($platform::Windows)) {
        $os = 'win'
    }
    elseif ($runtime::IsOSPlatform($platform::OSX)) {
        $os = 'osx'
    }
    elseif ($runtime::IsOSPlatform($platform::Linux)) {
        $os = 'linux'
    }
    else {
        throw "EcrCompose has no native library for this operating system: $($runtime::OSDescription)."
    }

    $architecture = switch ($runtime::ProcessArchitecture) {
        'X64' { 'x64' }
        'Arm64' { 'arm64' }
        default { throw "EcrCompose has no native library for the CPU architecture $_." }
    }

    return "$os-$architecture"
}
