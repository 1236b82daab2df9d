function Get-EcrNonInteractiveReason {
    <#
    .SYNOPSIS
    Returns why this PowerShell session cannot prompt the user, or $null when it can.

    .DESCRIPTION
    A prompt in a build agent or a script would wait for input that never comes, so the checks
    err on the side of not prompting: a host without a user interface (a runspace of
    [powershell]::Create()), CI or TF_BUILD set to true (GitHub Actions, GitLab, Azure
    Pipelines and most other CI services set one of them), a process that Windows does not run
    in an interactive desktop ([Environment]::UserInteractive), and, in the console host, a
    PowerShell started with -NonInteractive or with redirected standard input.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param()

    if ($null -eq $Host.UI -or $null -eq $Host.UI.RawUI -or $Host.Name -eq 'Default Host') {
        return "the PowerShell host '$($Host.Name)' has no user interface"
    }

    foreach ($name in 'CI', 'TF_BUILD') {
        $value = [Environment]::GetEnvironmentVariable($name)
        if ($value -and $value -notin '0', 'false', 'no') {
            return "$name is set, so this looks like a CI job"
        }
    }

    if (-not [Environment]::UserInteractive) {
        return 'the process does not run in an interactive session'
    }

    # The command line and standard input matter only to the console host: other hosts, such as
    # the ISE or an editor's terminal, prompt through their own window.
    if ($Host.Name -ne 'ConsoleHost') {
        return $null
    }

    # pwsh and powershell.exe take -NonInteractive, or any prefix of it from -noni on, before
    # -Command or -File: the arguments after those belong to the command or the script.
    foreach ($argument in @([Environment]::GetCommandLineArgs() | Select-Object -Skip 1)) {
        $name = $argument.TrimStart('-', '/')
        if ($name -eq $argument) {
            continue
        }

        if ($name -in 'c', 'command', 'f', 'file', 'e', 'ec', 'encodedcommand', 'cwa', 'commandwithargs') {
            break
        }

        if ($name.Length -ge 4 -and 'noninteractive'.StartsWith($name, [System.StringComparison]::OrdinalIgnoreCase)) {
            return 'PowerShell runs with -NonInteractive'
        }
    }

    if ([Console]::IsInputRedirected) {
        return 'standard input is redirected'
    }

    return $null
}
