function Read-EcrTokenCode {
    <#
    .SYNOPSIS
    Asks the user for the MFA code, or fails with MissingTokenCode where the host cannot ask.

    .DESCRIPTION
    Read-Host fails in pwsh -NonInteractive and in hosts without a user interface; an empty answer
    counts as no code. Checking the format is left to the library, which names the fault.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param(
        [AllowEmptyString()]
        [string] $SerialNumber,

        [Parameter(Mandatory)]
        [System.Management.Automation.PSCmdlet] $Cmdlet
    )

    $device = if ($SerialNumber) { $SerialNumber } else { 'your MFA device' }
    $code = $null
    try {
        $code = Read-Host -Prompt "MFA code of $device"
    }
    catch {
        Write-Debug "Cannot ask for the MFA code: $($_.Exception.Message)"
    }

    if ([string]::IsNullOrWhiteSpace($code)) {
        $exception = [System.ArgumentException]::new(
            'No MFA code was given and no cached session is left: pass -TokenCode with the 6 digits your MFA device shows now.')
        $Cmdlet.ThrowTerminatingError([System.Management.Automation.ErrorRecord]::new(
            $exception, 'MissingTokenCode', 'InvalidArgument', $SerialNumber))
    }

    return $code.Trim()
}
