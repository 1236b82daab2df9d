function Write-EcrEvent {
    <#
    .SYNOPSIS
    Writes a log or progress event of the native library to the matching PowerShell stream.

    .DESCRIPTION
    Log levels error and warn go to the warning stream, info to the verbose stream, and debug and
    trace to the debug stream, each line masked by ConvertTo-EcrRedactedText first. Progress events go to Write-Progress, and the ids of the bars still
    open are kept in OpenProgress so that the caller can complete them when the operation ends.
    Item events are left to the caller.
    #>
    [CmdletBinding()]
    param(
        # One event document, as parsed by ConvertFrom-Json.
        [Parameter(Mandatory)]
        [object] $EventDocument,

        # Progress ids written and not completed yet; keys are ids, values are activities.
        [Parameter(Mandatory)]
        [hashtable] $OpenProgress
    )

    switch ($EventDocument.type) {
        'log' {
            $text = ConvertTo-EcrRedactedText -Text ([string] $EventDocument.message)
            switch ($EventDocument.level) {
                'error' { Write-Warning $text }
                'warn' { Write-Warning $text }
                'info' { Write-Verbose $text }
                default { Write-Debug "$($EventDocument.target): $text" }
            }
        }

        'progress' {
            $activity = [string] $EventDocument.activity
            if (-not $activity) {
                $activity = 'EcrCompose'
            }

            $progress = @{
                Id = [int] $EventDocument.id
                Activity = $activity
            }
            # Ids start at 1, and parentId 0 marks a top-level bar.
            if ($null -ne $EventDocument.parentId -and [int] $EventDocument.parentId -gt 0 -and
                [int] $EventDocument.parentId -ne [int] $EventDocument.id) {
                $progress.ParentId = [int] $EventDocument.parentId
            }

            if ($EventDocument.completed) {
                $OpenProgress.Remove($progress.Id)
                Write-Progress @progress -Completed
                return
            }

            # Windows PowerShell 5.1 rejects an empty status.
            $progress.Status = if ($EventDocument.status) { [string] $EventDocument.status } else { 'Working' }
            if ($null -ne $EventDocument.percent) {
                $progress.PercentComplete = [Math]::Max(0, [Math]::Min(100, [int] $EventDocument.percent))
            }

            $OpenProgress[$progress.Id] = $activity
            Write-Progress @progress
        }

        default {
            Write-Debug "Ignored an event of type '$($EventDocument.type)' from the EcrCompose library."
        }
    }
}
