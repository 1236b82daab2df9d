function ConvertTo-EcrCompletionResult {
    <#
    .SYNOPSIS
    Converts the values that start with the typed word into CompletionResult objects.

    .DESCRIPTION
    The match ignores case and the quotes the user may have typed. A value that PowerShell would
    not read as one bare word, such as a profile name with a space, is completed in single quotes.
    #>
    [CmdletBinding()]
    [OutputType([System.Management.Automation.CompletionResult])]
    param(
        [AllowNull()]
        [AllowEmptyCollection()]
        [string[]] $Value,

        [AllowNull()]
        [AllowEmptyString()]
        [string] $WordToComplete,

        # Tool tips by value; the value itself when absent.
        [System.Collections.IDictionary] $ToolTip
    )

    $typed = ([string] $WordToComplete).Trim('''', '"')
    foreach ($item in @($Value | Where-Object { $_ })) {
        if (-not $item.StartsWith($typed, [System.StringComparison]::OrdinalIgnoreCase)) {
            continue
        }

        $text = $item
        if ($item -notmatch '^[\w.:/@+-]+$') {
            $text = "'" + $item.Replace("'", "''") + "'"
        }

        $tip = $item
        if ($null -ne $ToolTip -and $ToolTip.Contains($item)) {
            $tip = [string] $ToolTip[$item]
        }

        [System.Management.Automation.CompletionResult]::new($text, $item, 'ParameterValue', $tip)
    }
}
