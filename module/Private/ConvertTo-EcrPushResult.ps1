function ConvertTo-EcrPushResult {
    <#
    .SYNOPSIS
    Converts one image of a push response into an EcrCompose.PushResult object.
    #>
    [CmdletBinding()]
    [OutputType('EcrCompose.PushResult')]
    param(
        # One element of result.images, or the item of an item event.
        [Parameter(Mandatory)]
        [object] $Image
    )

    [pscustomobject] @{
        PSTypeName = 'EcrCompose.PushResult'
        Service = [string[]] @($Image.services | Where-Object { $null -ne $_ })
        Reference = $Image.reference
        Registry = $Image.registry
        Repository = $Image.repository
        Tag = $Image.tag
        Digest = $Image.digest
        Status = $Image.status
        Reason = $Image.reason
        Via = $Image.via
        BytesUploaded = [long] $Image.bytesUploaded
        BlobsUploaded = [int] $Image.blobsUploaded
        BlobsSkipped = [int] $Image.blobsSkipped
    }
}
