function ConvertTo-EcrCredentials {
    <#
    .SYNOPSIS
    Builds the credentials object of a request from an MFA session, after checking it has not expired.

    .DESCRIPTION
    An expired session becomes a terminating error of Cmdlet with the ErrorId SessionExpired,
    because AWS would reject it with a less helpful message. The error names the account, the
    MFA device and the expiration, never a secret.
    #>
    [CmdletBinding()]
    [OutputType([hashtable])]
    param(
        [Parameter(Mandatory)]
        [EcrCompose.MfaSession] $Session,

        [Parameter(Mandatory)]
        [System.Management.Automation.PSCmdlet] $Cmdlet
    )

    foreach ($name in 'AccessKeyId', 'SecretAccessKey', 'SessionToken') {
        if (-not $Session.$name) {
            $exception = [System.ArgumentException]::new(
                "The MFA session has no $name. Pass the object that Get-EcrMfaSession returned.")
            $Cmdlet.ThrowTerminatingError([System.Management.Automation.ErrorRecord]::new(
                $exception, 'MfaSessionIncomplete', 'InvalidArgument', $Session.SerialNumber))
        }
    }

    if ($Session.Expiration -ne [datetime]::MinValue -and $Session.Expiration.ToUniversalTime() -le [datetime]::UtcNow) {
        $message = 'The MFA session of account {0} ({1}) expired at {2:u}. Run Get-EcrMfaSession again.' -f
            $Session.AccountId, $Session.SerialNumber, $Session.Expiration.ToUniversalTime()
        $exception = [System.UnauthorizedAccessException]::new($message)
        $Cmdlet.ThrowTerminatingError([System.Management.Automation.ErrorRecord]::new(
            $exception, 'SessionExpired', 'AuthenticationError', $Session.SerialNumber))
    }

    $credentials = @{
        accessKeyId = $Session.AccessKeyId
        secretAccessKey = $Session.SecretAccessKey
        sessionToken = $Session.SessionToken
    }
    if ($Session.Expiration -ne [datetime]::MinValue) {
        $credentials.expiration = $Session.Expiration.ToUniversalTime().ToString(
            'yyyy-MM-ddTHH:mm:ssZ', [System.Globalization.CultureInfo]::InvariantCulture)
    }

    return $credentials
}
