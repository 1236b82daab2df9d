function Register-EcrArgumentCompleter {
    <#
    .SYNOPSIS
    Registers tab completion for -ProfileName, -Region and -Service of the exported commands.

    .DESCRIPTION
    The script blocks are created here, inside the module, so they run in its scope and can call
    its private functions. Each one reads the files again on every Tab press, so a profile or
    service added a moment ago is offered at once.
    #>
    [CmdletBinding()]
    param()

    $profileCompleter = {
        param($commandName, $parameterName, $wordToComplete, $commandAst, $fakeBoundParameters)
        ConvertTo-EcrCompletionResult -Value (Get-EcrAwsProfileName) -WordToComplete $wordToComplete
    }
    Register-ArgumentCompleter -ParameterName ProfileName -ScriptBlock $profileCompleter -CommandName @(
        'Clear-EcrMfaSession', 'Connect-EcrRegistry', 'Get-EcrMfaSession', 'Push-ComposeToEcr')

    $regionCompleter = {
        param($commandName, $parameterName, $wordToComplete, $commandAst, $fakeBoundParameters)
        $regions = Get-EcrAwsRegionName
        ConvertTo-EcrCompletionResult -Value ([string[]] @($regions.Keys)) -WordToComplete $wordToComplete -ToolTip $regions
    }
    Register-ArgumentCompleter -ParameterName Region -ScriptBlock $regionCompleter -CommandName @(
        'Connect-EcrRegistry', 'Get-EcrMfaSession', 'Push-ComposeToEcr')

    $serviceCompleter = {
        param($commandName, $parameterName, $wordToComplete, $commandAst, $fakeBoundParameters)
        $paths = $null
        if ($fakeBoundParameters.ContainsKey('Path')) {
            $paths = [string[]] @($fakeBoundParameters['Path'])
        }

        # Services named earlier in the list are not offered again. The list is read from the
        # syntax tree because, after a trailing comma, it is missing from the fake bound parameters.
        $given = [System.Collections.Generic.List[string]]::new()
        $elements = @($commandAst.CommandElements)
        for ($index = 0; $index -lt $elements.Count - 1; $index++) {
            $element = $elements[$index]
            if ($element -is [System.Management.Automation.Language.CommandParameterAst] -and
                $element.ParameterName.Length -ge 2 -and
                'Service'.StartsWith($element.ParameterName, [System.StringComparison]::OrdinalIgnoreCase)) {
                $strings = $elements[$index + 1].FindAll({
                        $args[0] -is [System.Management.Automation.Language.StringConstantExpressionAst]
                    }, $true)
                foreach ($string in $strings) { $given.Add($string.Value) }
            }
        }

        # The word being completed is in the list too, but it is not a service named before.
        [void] $given.Remove(([string] $wordToComplete).Trim('''', '"'))
        $services = @(Get-EcrComposeServiceName -Path $paths | Where-Object { -not $given.Contains($_) })
        ConvertTo-EcrCompletionResult -Value $services -WordToComplete $wordToComplete
    }
    Register-ArgumentCompleter -CommandName 'Push-ComposeToEcr' -ParameterName Service -ScriptBlock $serviceCompleter
}
