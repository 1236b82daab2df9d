function ConvertTo-EcrPushSummary {
    <#
    .SYNOPSIS
    Converts the summary of a push response into an EcrCompose.PushSummary.
    #>
    [CmdletBinding()]
    [OutputType([EcrCompose.PushSummary])]
    param(
        # result.summary of a push response: pushed, skipped, failed, bytesUploaded and seconds.
        [Parameter(Mandatory)]
        [object] $Summary
    )

    $pushSummary = [EcrCompose.PushSummary]::new()
    $pushSummary.Pushed = [int] $Summary.pushed
    $pushSummary.Skipped = [int] $Summary.skipped
    $pushSummary.Failed = [int] $Summary.failed
    $pushSummary.BytesUploaded = [long] $Summary.bytesUploaded
    $pushSummary.Duration = [timespan]::FromSeconds([double] $Summary.seconds)
    return $pushSummary
}
