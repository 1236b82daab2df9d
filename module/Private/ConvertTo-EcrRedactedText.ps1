function ConvertTo-EcrRedactedText {
    <#
    .SYNOPSIS
    Masks the values of secret fields in a log line of the library.

    .DESCRIPTION
    The library masks every secret it knows of, but at the trace level the AWS SDK logs HTTP
    bodies and parsed responses while a call runs, before the library has seen the secrets in
    them. ECR's authorizationToken is one: the ECR API model does not mark it sensitive, so the
    SDK logs it in full. This second line of defence masks, by pattern, the values of fields
    that hold secrets: JSON members and Rust Debug fields named like authorizationToken,
    secretAccessKey, sessionToken or password, the XML elements SecretAccessKey and SessionToken,
    and Basic credentials of an Authorization header.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param(
        [AllowEmptyString()]
        [string] $Text
    )

    if (-not $Text) {
        return $Text
    }

    $names = 'authorizationToken|authorization_token|secretAccessKey|secret_access_key|sessionToken|session_token|' +
        'password|identitytoken|identity_token|registrytoken|registry_token|auth'

    # "name": "value", also with the quotes escaped as in a Debug print of a byte string.
    $masked = [regex]::Replace($Text, "(?i)(\\?""(?:$names)\\?""\s*:\s*\\?"")[^""\\]*", '$1***')

    # name: Some("value") and name: "value" of a Rust Debug print.
    $masked = [regex]::Replace($masked, "(?i)(\b(?:$names):\s*(?:Some\()?\\?"")[^""\\]*", '$1***')

    # <SecretAccessKey>value</SecretAccessKey> and <SessionToken>value</SessionToken>.
    $masked = [regex]::Replace($masked, '(?i)(<(SecretAccessKey|SessionToken)>)[^<]*(</\2>)', '$1***$3')

    # Authorization: Basic base64
    return [regex]::Replace($masked, '(?i)(\bBasic\s+)[A-Za-z0-9+/=]{8,}', '$1***')
}
