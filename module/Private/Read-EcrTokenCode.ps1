function Read-EcrTokenCode {
    <#
    .SYNOPSIS
    Asks the user for the MFA code without echo, or fails with MissingTokenCode where it cannot ask.

    .DESCRIPTION
    The code is read with Read-Host -AsSecureString, so it is not shown while typed and stays out
    of the transcript, and it is converted to a string only in memory for the request. In a
    session that cannot prompt (see Get-EcrNonInteractiveReason) the error says why and names
    -TokenCode. An empty answer counts as no code. Checking the format is left to the library,
    which names the fault.
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
    $reason = Get-EcrNonInteractiveReason
    $code = $null
    if (-not $reason) {
        try {
            $secureCode = Read-Host -Prompt "MFA code of $device" -AsSecureString
            if ($null -ne $secureCode) {
                $code = [System.Net.NetworkCredential]::new('', $secureCode).Password
                $secureCode.Dispose()
            }
        }
        catch {
            $reason = "the host cannot prompt ($($_.Exception.Message))"
        }
    }

    if ([string]::IsNullOrWhiteSpace($code)) {
        $why = if ($reason) { "and this session cannot ask for one because $reason" } else { 'and none was typed' }
        $exception = [System.ArgumentException]::new(
            "No MFA code was given and no cached session is left, $why. Pass -TokenCode with the 6 digits your MFA device shows now.")
        $Cmdlet.ThrowTerminatingError([System.Management.Automation.ErrorRecord]::new(
            $exception, 'MissingTokenCode', 'InvalidArgument', $SerialNumber))
    }

    return $code.Trim()
}
