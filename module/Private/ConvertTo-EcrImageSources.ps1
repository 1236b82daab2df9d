function ConvertTo-EcrImageSources {
    <#
    .SYNOPSIS
    Converts the Source hashtable into the sources object of a push request, with absolute paths.

    .DESCRIPTION
    Each value is oci-layout:PATH or docker-archive:PATH, optionally followed by #REF or #IMAGE.
    The library resolves a relative PATH against the project directory, as compose does for build
    contexts, but on a command line a relative path means the current location, so PATH is made
    absolute here. A value of another form is passed on unchanged for the library to reject.
    #>
    [CmdletBinding()]
    [OutputType([hashtable])]
    param(
        [Parameter(Mandatory)]
        [hashtable] $Source,

        [Parameter(Mandatory)]
        [System.Management.Automation.PSCmdlet] $Cmdlet
    )

    $sources = @{}
    foreach ($key in $Source.Keys) {
        $value = [string] $Source[$key]
        if ($value -match '^(?<kind>oci-layout|docker-archive):(?<path>[^#]+)(?<reference>#.*)?$') {
            $kind = $Matches['kind']
            $reference = $Matches['reference']
            $path = Resolve-EcrFileSystemPath -Path $Matches['path'] -Cmdlet $Cmdlet
            $value = "${kind}:$path$reference"
        }

        $sources[[string] $key] = $value
    }

    return $sources
}
