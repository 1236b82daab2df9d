function Invoke-EcrOperation {
    <#
    .SYNOPSIS
    Runs a token, login, push or cache-clear operation of the native library and polls it until it ends.

    .DESCRIPTION
    Sends the request as JSON with abiVersion 1 and the logLevel of Get-EcrLogLevel, starts the
    operation without a callback, and polls it every PollMilliseconds on this thread: no script
    code runs on a native thread. Log events go to the verbose, debug and warning streams,
    progress events to Write-Progress.

    For push, each image is written to the output as an EcrCompose.PushResult as soon as its item
    event arrives, and each failed image also as a non-terminating error. Unless the request is
    a dry run, an EcrCompose.PushSummary goes to the information stream of Cmdlet at the end,
    tagged EcrCompose and PushSummary. For the other operations, the result document of the
    response is written to the output.

    A failed operation becomes a terminating error of Cmdlet. An error whose errorId is in
    ReturnErrorId is returned as an ErrorRecord instead, for a caller that handles it, because
    the caller could not catch the terminating error: ThrowTerminatingError ends the cmdlet past
    every try/catch inside it. When the pipeline stops (Ctrl+C) or fails, the finally block
    cancels the operation if it still runs and frees its handle.
    #>
    [CmdletBinding()]
    param(
        [Parameter(Mandatory)]
        [ValidateSet('token', 'login', 'push', 'cache-clear')]
        [string] $Operation,

        # Request fields of the operation without abiVersion and logLevel.
        [Parameter(Mandatory)]
        [hashtable] $Request,

        # The public cmdlet that reports errors.
        [Parameter(Mandatory)]
        [System.Management.Automation.PSCmdlet] $Cmdlet,

        # How long each poll waits for the operation to end; Ctrl+C is noticed between polls.
        [ValidateRange(10, 5000)]
        [int] $PollMilliseconds = 200,

        # Library errorIds that are returned as an ErrorRecord instead of thrown.
        [string[]] $ReturnErrorId = @()
    )

    $library = Get-EcrNativeLibrary -Cmdlet $Cmdlet

    $document = @{}
    foreach ($key in $Request.Keys) {
        $document[$key] = $Request[$key]
    }

    $document.abiVersion = [EcrCompose.Native.EcrLibrary]::ExpectedAbiVersion
    $debugEnabled = $DebugPreference -ne 'SilentlyContinue' -and $DebugPreference -ne 'Ignore'
    $document.logLevel = Get-EcrLogLevel -DebugEnabled $debugEnabled
    Write-Debug "Starting the $Operation operation of the library with log level $($document.logLevel)."

    $requestJson = ConvertTo-Json -InputObject $document -Depth 20 -Compress

    # The library reads AWS_*, DOCKER_* and the compose variables with getenv, which does not see
    # $env: changes on Linux and macOS until they are copied.
    $removable = @(
        'AWS_PROFILE', 'AWS_DEFAULT_PROFILE', 'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_ENDPOINT_URL',
        'AWS_ENDPOINT_URL_STS', 'AWS_ENDPOINT_URL_ECR', 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY',
        'AWS_SESSION_TOKEN', 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'ECR_COMPOSE_CACHE_DIR',
        'DOCKER_HOST', 'DOCKER_CONFIG', 'DOCKER_CERT_PATH', 'DOCKER_TLS_VERIFY'
    )
    [void] [EcrCompose.Native.NativeEnvironment]::Synchronize($removable)

    $handle = $null
    $response = $null
    $finalStatus = 0
    $openProgress = @{}
    $writtenImages = [System.Collections.Generic.HashSet[string]]::new()
    try {
        try {
            $handle = $library.Start($Operation, $requestJson)
        }
        catch {
            $reason = $_.Exception
            while ($reason -is [System.Management.Automation.MethodInvocationException] -and $reason.InnerException) {
                $reason = $reason.InnerException
            }

            if ($reason -isnot [EcrCompose.Native.EcrStartException]) {
                throw
            }

            $errorDocument = $null
            if ($reason.ErrorJson) {
                $errorDocument = ConvertFrom-Json -InputObject $reason.ErrorJson
            }

            $record = New-EcrErrorRecord -ErrorDocument $errorDocument -Status (Get-EcrStatusName $reason.Status)
            if ($record.FullyQualifiedErrorId -in $ReturnErrorId) {
                return $record
            }

            $Cmdlet.ThrowTerminatingError($record)
        }

        while ($null -eq $response) {
            $poll = $handle.Poll($PollMilliseconds)
            $pollDocument = $null
            if ($poll.Json) {
                $pollDocument = ConvertFrom-Json -InputObject $poll.Json
            }

            foreach ($eventDocument in @($pollDocument.events | Where-Object { $null -ne $_ })) {
                if ($eventDocument.type -ne 'item') {
                    Write-EcrEvent -EventDocument $eventDocument -OpenProgress $openProgress
                    continue
                }

                $image = $eventDocument.item
                [void] $writtenImages.Add("$($image.reference)|$($image.status)")
                ConvertTo-EcrPushResult -Image $image
                if ($image.status -eq 'Failed') {
                    $Cmdlet.WriteError((New-EcrErrorRecord -ErrorDocument $image.error -Status 'Registry'))
                }
            }

            if ($poll.Status -ne [EcrCompose.Native.EcrLibrary]::StatusPending) {
                $finalStatus = $poll.Status
                $response = $pollDocument
                if ($null -eq $response) {
                    $response = [pscustomobject] @{ ok = $false; error = $null }
                }
            }
        }
    }
    finally {
        # Free the handle first: writing to a stream fails once the pipeline is stopping.
        if ($null -ne $handle) {
            if ($null -eq $response) {
                [void] $handle.Cancel()
            }

            $handle.Dispose()
        }

        foreach ($id in @($openProgress.Keys)) {
            Write-Progress -Id $id -Activity $openProgress[$id] -Completed
        }
    }

    if ($Operation -eq 'push' -and $null -ne $response.result) {
        # Images that had no item event of their own, such as those of a plan.
        foreach ($image in @($response.result.images | Where-Object { $null -ne $_ })) {
            if (-not $writtenImages.Contains("$($image.reference)|$($image.status)")) {
                ConvertTo-EcrPushResult -Image $image
                if ($image.status -eq 'Failed') {
                    $Cmdlet.WriteError((New-EcrErrorRecord -ErrorDocument $image.error -Status 'Registry'))
                }
            }
        }

        if ($null -ne $response.result.summary -and -not $Request.dryRun) {
            $Cmdlet.WriteInformation((ConvertTo-EcrPushSummary -Summary $response.result.summary), [string[]] @('EcrCompose', 'PushSummary'))
        }
    }

    if ($response.ok -ne $true) {
        $record = New-EcrErrorRecord -ErrorDocument $response.error -Status (Get-EcrStatusName $finalStatus)
        if ($record.FullyQualifiedErrorId -in $ReturnErrorId) {
            return $record
        }

        $Cmdlet.ThrowTerminatingError($record)
    }

    if ($Operation -ne 'push') {
        $response.result
    }
}
