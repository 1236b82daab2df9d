function Get-EcrLogLevel {
    <#
    .SYNOPSIS
    Returns the logLevel of a library request: ECR_COMPOSE_LOG_LEVEL when set, else debug with -Debug, else info.

    .DESCRIPTION
    The library sends info lines to the verbose stream and debug and trace lines to the debug
    stream. ECR_COMPOSE_LOG_LEVEL=trace adds the trace lines of every crate, such as the HTTP
    exchanges of the AWS SDK; the library masks secrets at every level. An invalid value is
    reported as a warning and ignored.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param(
        # True when the caller's debug stream is on.
        [bool] $DebugEnabled
    )

    $levels = 'info', 'debug', 'trace'
    $configured = $env:ECR_COMPOSE_LOG_LEVEL
    if ($configured) {
        $level = $configured.Trim().ToLowerInvariant()
        if ($level -in $levels) {
            return $level
        }

        Write-Warning "ECR_COMPOSE_LOG_LEVEL '$configured' is invalid and was ignored: set it to info, debug or trace."
    }

    if ($DebugEnabled) {
        return 'debug'
    }

    return 'info'
}
