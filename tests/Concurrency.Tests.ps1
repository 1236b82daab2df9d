# Tests of two pwsh processes that use the module at the same moment: two MFA sessions written to
# one session cache, and two pushes of examples/hello-compose to one registry. Each child waits
# for a start signal after importing the module, so that their library calls overlap.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'StandIns.psm1') -Force
    $context = New-StandInTestContext -Name concurrency -Services sts, registry, engine -BuildExample
    $manifestPath = $context.ManifestPath
    $state = $context.State
    $standIns = $context.StandIns
    $registryHost = $context.RegistryHost
    $ecrHost = $context.EcrHost
    $project = $context.Project
    $pwsh = @(Get-PwshCommand)

    $childScript = Join-Path $state 'child.ps1'
    Set-Content -Path $childScript -Encoding utf8 -Value @'
param([string] $ConfigurationFile, [string] $Name)
$configuration = Get-Content -Path $ConfigurationFile -Raw | ConvertFrom-Json
Import-Module $configuration.Manifest
Set-Content -Path (Join-Path $configuration.Folder "$Name.ready") -Value 'ready'
$deadline = [datetime]::UtcNow.AddSeconds(60)
while (-not (Test-Path $configuration.StartSignal)) {
    if ([datetime]::UtcNow -gt $deadline) { throw 'The start signal did not come within 60 s.' }
    Start-Sleep -Milliseconds 5
}

$result = [ordered] @{ Name = $Name; Ok = $false; Started = [datetime]::UtcNow.ToString('o') }
try {
    if ($configuration.Mode -eq 'session') {
        $session = Get-EcrMfaSession -SerialNumber $configuration.SerialNumber -TokenCode '123456' -CachePath $configuration.CacheFolder
        $result.FromCache = $session.FromCache
        $result.Expiration = $session.Expiration.ToString('o')
    }
    else {
        $aliases = @{ $configuration.RegistryHost = $configuration.EcrHost }
        $images = Get-EcrMfaSession -SerialNumber $configuration.SerialNumber -TokenCode '123456' -NoCache |
            Push-ComposeToEcr -Path $configuration.ComposeFile -RegistryAlias $aliases -CreateRepository -ErrorAction Stop
        $result.Images = @($images | ForEach-Object {
                [ordered] @{ Service = $_.Service -join ','; Status = $_.Status; Digest = $_.Digest; Reason = $_.Reason } })
    }

    $result.Ok = $true
}
catch {
    $result.Error = "$($_.FullyQualifiedErrorId): $($_.Exception.Message)"
}

$result.Ended = [datetime]::UtcNow.ToString('o')
$result | ConvertTo-Json -Depth 4 | Set-Content -Path (Join-Path $configuration.Folder "$Name.json") -Encoding utf8
'@

    # Starts two children with one configuration, releases them at once and returns their exit
    # codes and results once both have ended.
    function Invoke-Race {
        param([hashtable] $Configuration)

        $folder = $Configuration.Folder
        $null = New-Item -ItemType Directory -Path $folder -Force
        $Configuration.Manifest = $manifestPath
        $Configuration.StartSignal = Join-Path $folder 'start'
        $configurationFile = Join-Path $folder 'configuration.json'
        $Configuration | ConvertTo-Json | Set-Content -Path $configurationFile -Encoding utf8

        $names = 'first', 'second'
        $children = @(foreach ($name in $names) {
            $arguments = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-File', $childScript, $configurationFile, $name)
            Start-Process -FilePath $pwsh[0] -ArgumentList $arguments -NoNewWindow -PassThru `
                -RedirectStandardOutput (Join-Path $folder "$name.stdout") -RedirectStandardError (Join-Path $folder "$name.stderr")
            })

        $deadline = [datetime]::UtcNow.AddSeconds(60)
        while (@(Get-ChildItem -Path $folder -Filter '*.ready').Count -lt 2 -and [datetime]::UtcNow -lt $deadline) {
            Start-Sleep -Milliseconds 20
        }
        Set-Content -Path $Configuration.StartSignal -Value 'go'

        foreach ($child in $children) {
            if (-not $child.WaitForExit(120000)) {
                $child.Kill()
            }
        }

        for ($index = 0; $index -lt $names.Count; $index++) {
            $name = $names[$index]
            $resultFile = Join-Path $folder "$name.json"
            [pscustomobject] @{
                Name = $name
                ExitCode = $children[$index].ExitCode
                Result = if (Test-Path $resultFile) { Get-Content -Path $resultFile -Raw | ConvertFrom-Json } else { $null }
                Errors = Get-Content -Path (Join-Path $folder "$name.stderr") -Raw
            }
        }
    }
}

AfterAll {
    Remove-StandInTestContext -Context $context
}

Describe 'Two processes at once' {
    Context 'getting sessions' {
        BeforeAll {
            $cacheFolder = Join-Path $state 'shared-cache'
            Reset-StandInStats -StandIns $standIns
            $race = @(Invoke-Race -Configuration @{
                    Mode = 'session'; Folder = Join-Path $state 'session-race'; CacheFolder = $cacheFolder
                    SerialNumber = $standIns.serialNumber
                })
            $stsCallsOfRace = [int] (Get-StandInStats -StandIns $standIns).GetSessionToken
            $next = Get-EcrMfaSession -SerialNumber $standIns.serialNumber -CachePath $cacheFolder
            $stsCallsAfterNext = [int] (Get-StandInStats -StandIns $standIns).GetSessionToken
        }

        It '<Name> process exits with 0' -ForEach @(@{ Name = 'first'; Index = 0 }, @{ Name = 'second'; Index = 1 }) {
            $race[$Index].ExitCode | Should -Be 0 -Because $race[$Index].Errors
        }

        It '<Name> process gets a session' -ForEach @(@{ Name = 'first'; Index = 0 }, @{ Name = 'second'; Index = 1 }) {
            $race[$Index].Result.Ok | Should -BeTrue -Because $race[$Index].Result.Error
        }

        It 'calls STS at most once per process' {
            $stsCallsOfRace | Should -BeLessOrEqual 2
            $stsCallsOfRace | Should -BeGreaterOrEqual 1
        }

        It 'leaves a cache file that parses' {
            { Get-Content -Path (Join-Path $cacheFolder 'sessions.json') -Raw | ConvertFrom-Json -ErrorAction Stop } | Should -Not -Throw
        }

        It 'serves the next call from the cache' {
            $next.FromCache | Should -BeTrue
        }

        It 'serves the next call without calling STS' {
            $stsCallsAfterNext | Should -Be $stsCallsOfRace
        }

        It 'serves a session that one of the processes got' {
            $expirations = @($race | ForEach-Object { ([datetime] $_.Result.Expiration).ToUniversalTime().ToString('s') })
            $expirations | Should -Contain $next.Expiration.ToString('s')
        }
    }

    Context 'pushing the example project' {
        BeforeAll {
            $race = @(Invoke-Race -Configuration @{
                    Mode = 'push'; Folder = Join-Path $state 'push-race'; SerialNumber = $standIns.serialNumber
                    RegistryHost = $registryHost; EcrHost = $ecrHost; ComposeFile = Join-Path $project 'compose.yaml'
                })

            $authorization = 'Basic ' + [System.Convert]::ToBase64String(
                [System.Text.Encoding]::UTF8.GetBytes("$($standIns.registry.username):$($standIns.registry.password)"))

            # Returns the digest that the registry stores for a repository's tag 1.0.
            function Get-StoredDigest {
                param([string] $Repository)

                $accept = 'application/vnd.docker.distribution.manifest.v2+json, application/vnd.oci.image.manifest.v1+json'
                $response = Invoke-WebRequest -Uri "$($standIns.registry.url)/v2/$Repository/manifests/1.0" -Method Head `
                    -Headers @{ Authorization = $authorization; Accept = $accept } -NoProxy -SkipHttpErrorCheck
                return @($response.Headers['Docker-Content-Digest'])[0]
            }
        }

        It '<Name> process exits with 0' -ForEach @(@{ Name = 'first'; Index = 0 }, @{ Name = 'second'; Index = 1 }) {
            $race[$Index].ExitCode | Should -Be 0 -Because $race[$Index].Errors
        }

        It '<Name> process succeeds' -ForEach @(@{ Name = 'first'; Index = 0 }, @{ Name = 'second'; Index = 1 }) {
            $race[$Index].Result.Ok | Should -BeTrue -Because $race[$Index].Result.Error
        }

        It '<Name> process pushes web and api' -ForEach @(@{ Name = 'first'; Index = 0 }, @{ Name = 'second'; Index = 1 }) {
            @($race[$Index].Result.Images | Where-Object Status -EQ 'Pushed' | ForEach-Object Service | Sort-Object) |
                Should -Be @('api', 'web')
        }

        It 'runs the two pushes at the same time' {
            $first = $race[0].Result
            $second = $race[1].Result
            ([datetime] $first.Started) | Should -BeLessThan ([datetime] $second.Ended)
            ([datetime] $second.Started) | Should -BeLessThan ([datetime] $first.Ended)
        }

        It 'gives both processes the same digest of <_>' -ForEach 'web', 'api' {
            $service = $_
            $digests = @($race | ForEach-Object { ($_.Result.Images | Where-Object Service -EQ $service).Digest })
            $digests[0] | Should -Match '^sha256:[0-9a-f]{64}$'
            $digests[1] | Should -Be $digests[0]
        }

        It 'stores hello/<_> with that digest' -ForEach 'web', 'api' {
            $service = $_
            $digest = ($race[0].Result.Images | Where-Object Service -EQ $service).Digest
            Get-StoredDigest -Repository "hello/$service" | Should -Be $digest
        }
    }
}
