function Get-EcrComposeServiceName {
    <#
    .SYNOPSIS
    Returns the service names of compose files, sorted, for tab completion.

    .DESCRIPTION
    Without Path, the files are found as docker compose finds them: COMPOSE_FILE, or the first
    of compose.yaml, compose.yml, docker-compose.yml and docker-compose.yaml in the current
    location or its nearest parent that has one, with its override file. Relative paths are
    resolved against the current location.

    The files are scanned line by line rather than parsed: the names are the keys one level
    under a top-level services: key. That is fast enough for each Tab press and needs no YAML
    module.
    NOTE: a services mapping written in flow style (services: {web: ...}) and services that come
    only from include: or extends: of other files are not found.
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param(
        [AllowNull()]
        [AllowEmptyCollection()]
        [string[]] $Path
    )

    $pathApi = $ExecutionContext.SessionState.Path
    $location = $pathApi.CurrentFileSystemLocation.ProviderPath
    $files = @($Path | Where-Object { $_ } | ForEach-Object { $pathApi.GetUnresolvedProviderPathFromPSPath($_) })
    if ($files.Count -eq 0 -and $env:COMPOSE_FILE) {
        $separator = if ($env:COMPOSE_PATH_SEPARATOR) { $env:COMPOSE_PATH_SEPARATOR } else { [System.IO.Path]::PathSeparator }
        $files = @($env:COMPOSE_FILE.Split([string[]] @($separator), [System.StringSplitOptions]::RemoveEmptyEntries) |
                ForEach-Object { [System.IO.Path]::Combine($location, $_) })
    }

    $directory = $location
    while ($files.Count -eq 0 -and $directory) {
        $default = @('compose.yaml', 'compose.yml', 'docker-compose.yml', 'docker-compose.yaml' |
                ForEach-Object { Join-Path -Path $directory -ChildPath $_ } |
                Where-Object { [System.IO.File]::Exists($_) } | Select-Object -First 1)
        if ($default.Count -gt 0) {
            $override = @('compose.override.yml', 'compose.override.yaml', 'docker-compose.override.yml', 'docker-compose.override.yaml' |
                    ForEach-Object { Join-Path -Path $directory -ChildPath $_ } |
                    Where-Object { [System.IO.File]::Exists($_) } | Select-Object -First 1)
            $files = $default + $override
        }

        $directory = [System.IO.Path]::GetDirectoryName($directory)
    }

    $names = [System.Collections.Generic.SortedSet[string]]::new([System.StringComparer]::Ordinal)
    foreach ($file in $files) {
        if (-not [System.IO.File]::Exists($file)) {
            continue
        }

        $inServices = $false
        $indent = -1
        foreach ($line in [System.IO.File]::ReadAllLines($file)) {
            if ($line -match '^\s*(#|$)') {
                continue
            }

            if ($line -match '^(---|\.\.\.)(\s|$)') {
                $inServices = $false
                continue
            }

            $leading = $line.Length - $line.TrimStart(' ').Length
            if ($leading -eq 0) {
                $inServices = $line -match '^(services|"services"|''services'')\s*:\s*(#.*)?$'
                $indent = -1
                continue
            }

            if (-not $inServices) {
                continue
            }

            # The first key under services: sets the indentation of every service name.
            if ($indent -lt 0) {
                $indent = $leading
            }

            if ($leading -eq $indent -and
                $line -match '^\s*(?:"(?<name>[^"]+)"|''(?<name>[^'']+)''|(?<name>[^\s#:"''-][^\s:#]*))\s*:(\s|$)') {
                [void] $names.Add($Matches['name'])
            }
        }
    }

    return [string[]] @($names)
}
