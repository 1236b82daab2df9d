function New-EcrErrorRecord {
    <#
    .SYNOPSIS
    Converts an error document of the native library into an ErrorRecord.

    .DESCRIPTION
    The error document has status, errorId, message, and optionally serviceCode and target. The
    ErrorId of the record is errorId, its category follows from status, and its exception is an
    EcrCompose.EcrException that keeps the AWS or registry error code in ServiceCode.
    #>
    [CmdletBinding()]
    [OutputType([System.Management.Automation.ErrorRecord])]
    param(
        # An error document, as parsed by ConvertFrom-Json. Null gives an internal error.
        [AllowNull()]
        [object] $ErrorDocument,

        # Status name used when the document has none, for example the name of a result code.
        [string] $Status = 'Internal'
    )

    $errorId = 'InternalError'
    $message = 'The EcrCompose library failed without an error message.'
    $serviceCode = $null
    $target = $null
    if ($null -ne $ErrorDocument) {
        if ($ErrorDocument.status) { $Status = [string] $ErrorDocument.status }
        if ($ErrorDocument.errorId) { $errorId = [string] $ErrorDocument.errorId }
        if ($ErrorDocument.message) { $message = [string] $ErrorDocument.message }
        if ($ErrorDocument.serviceCode) { $serviceCode = [string] $ErrorDocument.serviceCode }
        if ($ErrorDocument.target) { $target = [string] $ErrorDocument.target }
    }

    $category = switch ($Status) {
        'InvalidArgument' { 'InvalidArgument' }
        'InvalidRequest' { 'InvalidArgument' }
        'Authentication' { 'AuthenticationError' }
        'NotFound' { 'ObjectNotFound' }
        'Denied' { 'PermissionDenied' }
        'Throttled' { 'LimitsExceeded' }
        'Network' { 'ConnectionError' }
        'Timeout' { 'OperationTimeout' }
        'Cancelled' { 'OperationStopped' }
        'Registry' { 'InvalidResult' }
        'AbiVersion' { 'InvalidOperation' }
        default { 'NotSpecified' }
    }

    $exception = [EcrCompose.EcrException]::new($Status, $errorId, $message, $serviceCode, $target)
    return [System.Management.Automation.ErrorRecord]::new(
        $exception,
        $errorId,
        [System.Management.Automation.ErrorCategory] $category,
        $target)
}
