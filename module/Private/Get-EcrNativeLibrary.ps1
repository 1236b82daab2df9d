function Get-EcrNativeLibrary {
    <#
    .SYNOPSIS
    Loads the native library on first use and returns it.

    .DESCRIPTION
    The library is loaded once per process and path, and its ABI version is checked when it loads.
    A failure becomes a terminating error of the calling cmdlet with the ErrorId
    NativeLibraryLoadFailed.
    #>
    [CmdletBinding()]
    [OutputType([EcrCompose.Native.EcrLibrary])]
    param(
        # The public cmdlet that reports a load failure.
        [Parameter(Mandatory)]
        [System.Management.Automation.PSCmdlet] $Cmdlet
    )

    if ($null -ne $script:EcrLibrary) {
        return $script:EcrLibrary
    }

    try {
        $path = Get-EcrNativeLibraryPath
        $script:EcrLibrary = [EcrCompose.Native.EcrLibrary]::Load($path)
        Write-Debug "Loaded the EcrCompose library '$path', ABI version $($script:EcrLibrary.AbiVersion)."
        return $script:EcrLibrary
    }
    catch {
        $reason = $_.Exception
        if ($reason -is [System.Management.Automation.MethodInvocationException] -and $reason.InnerException) {
            $reason = $reason.InnerException
        }

        $record = [System.Management.Automation.ErrorRecord]::new(
            $reason,
            'NativeLibraryLoadFailed',
            [System.Management.Automation.ErrorCategory]::ResourceUnavailable,
            $path)
        $Cmdlet.ThrowTerminatingError($record)
    }
}
