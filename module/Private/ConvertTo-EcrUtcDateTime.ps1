function ConvertTo-EcrUtcDateTime {
    <#
    .SYNOPSIS
    Converts an RFC 3339 time from the library into a UTC DateTime.

    .DESCRIPTION
    ConvertFrom-Json of PowerShell 7 already turns such strings into DateTime values, with a
    kind that depends on the version; Windows PowerShell 5.1 leaves them as strings. Both become
    a DateTime of kind Utc. Null stays null.
    #>
    [CmdletBinding()]
    [OutputType([datetime])]
    param(
        [AllowNull()]
        [object] $Value
    )

    if ($null -eq $Value -or '' -eq $Value) {
        return $null
    }

    if ($Value -is [datetime]) {
        if ($Value.Kind -eq [System.DateTimeKind]::Unspecified) {
            return [datetime]::SpecifyKind($Value, [System.DateTimeKind]::Utc)
        }

        return $Value.ToUniversalTime()
    }

    if ($Value -is [System.DateTimeOffset]) {
        return $Value.UtcDateTime
    }

    return [System.DateTimeOffset]::Parse(
        [string] $Value,
        [System.Globalization.CultureInfo]::InvariantCulture,
        [System.Globalization.DateTimeStyles]::AssumeUniversal).UtcDateTime
}
