function Test-EcrEndpointUrl {
    <#
    .SYNOPSIS
    Returns $true for an absolute http or https URL, and throws a plain message otherwise.

    .DESCRIPTION
    Used by the ValidateScript of the EndpointUrl parameters, whose thrown message PowerShell
    shows after "Cannot validate argument on parameter 'EndpointUrl'".
    #>
    [CmdletBinding()]
    [OutputType([bool])]
    param(
        [AllowEmptyString()]
        [string] $Url
    )

    $uri = $null
    if ([uri]::TryCreate($Url, [System.UriKind]::Absolute, [ref] $uri) -and $uri.Scheme -in 'http', 'https') {
        return $true
    }

    throw "The endpoint URL '$Url' is invalid: give an absolute http or https URL, such as http://127.0.0.1:4566."
}
