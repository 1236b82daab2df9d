# Tests of Push-ComposeToEcr against the STS gate, Debian's docker-registry and a private dockerd.
# The images of examples/hello-compose are named for the local registry (REGISTRY), which
# -RegistryAlias maps to the ECR host of the stand-in account.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'StandIns.psm1') -Force
    $context = New-StandInTestContext -Name push -Services sts, registry, engine -BuildExample -WithSession
    $manifestPath = $context.ManifestPath
    $state = $context.State
    $standIns = $context.StandIns
    $registryHost = $context.RegistryHost
    $ecrHost = $context.EcrHost
    $aliases = $context.Aliases
    $project = $context.Project
    $composeFile = $context.ComposeFile
    $session = $context.Session
    $secrets = $context.Secrets
    $pwsh = @(Get-PwshCommand)

    # Returns the HTTP status of GET /v2/<repository>/tags/list on the local registry.
    function Get-RepositoryStatus {
        param([string] $Repository)

        $headers = @{ Authorization = $context.RegistryAuthorization }
        $response = Invoke-WebRequest -Uri "$($standIns.registry.url)/v2/$Repository/tags/list" -Headers $headers `
            -NoProxy -SkipHttpErrorCheck
        return [int] $response.StatusCode
    }

    # Writes a compose file for one service whose image is Image, and returns its path.
    function New-ComposeFile {
        param([string] $Image, [string] $Name = 'single')

        $folder = Join-Path $state "project-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $null = New-Item -ItemType Directory -Path $folder
        $path = Join-Path $folder 'compose.yaml'
        Set-Content -Path $path -Value "services:`n  ${Name}:`n    image: $Image`n" -Encoding utf8
        return $path
    }

    function Invoke-Docker {
        param([string[]] $Arguments)

        $output = & docker @Arguments 2>&1
        if ($LASTEXITCODE -ne 0) { throw "docker $($Arguments -join ' ') failed: $output" }
    }
}

AfterAll {
    Remove-StandInTestContext -Context $context
}

Describe 'Push-ComposeToEcr' {
    Context 'example project' {
        BeforeAll {
            $records = @($session | Push-ComposeToEcr -Path $composeFile -RegistryAlias $aliases -CreateRepository -Verbose -Debug *>&1)
            $results = @($records | Where-Object { $_.PSObject.TypeNames -contains 'EcrCompose.PushResult' })
            $web = $results | Where-Object { $_.Service -contains 'web' }
            $cache = $results | Where-Object { $_.Service -contains 'cache' }
            $tools = $results | Where-Object { $_.Service -contains 'tools' }
        }

        It 'pushes web and api' {
            @($results | Where-Object Status -EQ 'Pushed' | ForEach-Object { $_.Service } | Sort-Object) | Should -Be @('api', 'web')
        }

        It 'returns one result per image' {
            @($results | ForEach-Object Reference | Sort-Object -Unique).Count | Should -Be $results.Count
        }

        It 'names the repository of web' {
            $web.Repository | Should -Be 'hello/web'
        }

        It 'names the tag of web' {
            $web.Tag | Should -Be '1.0'
        }

        It 'names the reference of web' {
            $web.Reference | Should -Be "$registryHost/hello/web:1.0"
        }

        It 'returns the digest of web' {
            $web.Digest | Should -Match '^sha256:[0-9a-f]{64}$'
        }

        It 'skips the Docker Hub image' {
            $cache.Status | Should -Be 'Skipped'
            $cache.Reason | Should -Not -BeNullOrEmpty
        }

        It 'skips the build-only service' {
            $tools.Status | Should -Be 'Skipped'
            $tools.Reason | Should -Not -BeNullOrEmpty
        }

        It 'writes no error' {
            @($records | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] }) | Should -BeNullOrEmpty
        }

        It 'writes verbose messages' {
            @($records | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Count | Should -BeGreaterThan 0
        }

        It 'writes no secret to any stream' {
            Find-SecretName -Text (ConvertTo-VisibleText $records) -Secrets $secrets | Should -BeNullOrEmpty
        }

        It 'keeps the layer digest cache in ECR_COMPOSE_CACHE_DIR' {
            # Another test file of the same process may have pushed with another folder before.
            Join-Path $env:ECR_COMPOSE_CACHE_DIR 'layer-digests-v1.json' | Should -Exist
        }

        It 'reports progress and completes it' {
            # Progress is not a redirectable stream, but a runspace collects it.
            $shell = [powershell]::Create()
            try {
                $null = $shell.AddScript({
                        param($Manifest, $Path, $Aliases, $Session)
                        Import-Module $Manifest
                        Push-ComposeToEcr -Path $Path -RegistryAlias $Aliases -Session $Session -Service api -CreateRepository
                    }).AddArgument($manifestPath).AddArgument($composeFile).AddArgument($aliases).AddArgument($session)
                $null = $shell.Invoke()
                $progress = @($shell.Streams.Progress)
            }
            finally {
                $shell.Dispose()
            }

            $progress.Count | Should -BeGreaterThan 0
            @($progress | Where-Object RecordType -EQ 'Completed').Count | Should -BeGreaterThan 0
        }

        It 'shows results in a table' {
            $table = $results | Out-String -Width 200
            $table | Should -Match 'Pushed'
            $table | Should -Match 'hello/web:1.0'
        }

        It 'shows a result in a list' {
            $list = $web | Format-List | Out-String -Width 200
            $list | Should -Match 'Repository\s*:\s*hello/web'
            $list | Should -Match 'Uploaded\s*:'
        }
    }

    Context 'summary' {
        BeforeAll {
            $output = @(Push-ComposeToEcr -Path $composeFile -Session $session -RegistryAlias $aliases -CreateRepository `
                    -InformationVariable information)
            $summaries = @($information | Where-Object { $_.Tags -contains 'PushSummary' })
        }

        It 'writes one summary' {
            $summaries.Count | Should -Be 1
        }

        It 'tags the summary with EcrCompose' {
            $summaries[0].Tags | Should -Contain 'EcrCompose'
        }

        It 'counts the pushed images' {
            $summaries[0].MessageData.Pushed | Should -Be 2
        }

        It 'counts the skipped images' {
            $summaries[0].MessageData.Skipped | Should -Be 2
        }

        It 'counts no failed image' {
            $summaries[0].MessageData.Failed | Should -Be 0
        }

        It 'measures the duration' {
            $summaries[0].MessageData.Duration | Should -BeGreaterThan ([timespan]::Zero)
        }

        It 'reads as one line' {
            "$($summaries[0].MessageData)" | Should -Match '^Pushed 2 images, skipped 2, failed 0; uploaded .+ in \d+\.\d s\.$'
        }

        It 'stays out of the output' {
            @($output | Where-Object { $_.PSObject.TypeNames -notcontains 'EcrCompose.PushResult' }) | Should -BeNullOrEmpty
        }

        It 'is not written with -WhatIf' {
            $null = Push-ComposeToEcr -Path $composeFile -Session $session -RegistryAlias $aliases -WhatIf -InformationVariable planned
            @($planned | Where-Object { $_.Tags -contains 'PushSummary' }) | Should -BeNullOrEmpty
        }

        It 'counts a failed image' {
            $folder = Join-Path $state 'summary-failed'
            $null = New-Item -ItemType Directory -Path $folder -Force
            $failedCompose = Join-Path $folder 'compose.yaml'
            Set-Content -Path $failedCompose -Encoding utf8 -Value "services:`n  missing:`n    image: $registryHost/hello/missing:1.0`n"
            $null = Push-ComposeToEcr -Path $failedCompose -Session $session -RegistryAlias $aliases -CreateRepository `
                -InformationVariable failedInformation -ErrorAction SilentlyContinue
            $summary = @($failedInformation | Where-Object { $_.Tags -contains 'PushSummary' })[0].MessageData
            $summary.Failed | Should -Be 1
        }

        It 'prints the line with -InformationAction Continue' {
            $script = "Import-Module '$manifestPath'; " +
                "`$session = Get-EcrMfaSession -SerialNumber '$($standIns.serialNumber)' -TokenCode '123456'; " +
                "`$null = Push-ComposeToEcr -Path '$composeFile' -Session `$session -RegistryAlias @{ '$registryHost' = '$ecrHost' } " +
                "-Service web -InformationAction Continue"
            $arguments = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-Command', $script)
            $printed = & $pwsh[0] @arguments 2>&1 | Out-String
            $printed | Should -Match 'Pushed 1 image, skipped 0, failed 0; uploaded '
        }
    }

    Context 'selection and paths' {
        It 'pushes only the services of -Service' {
            $results = @(Push-ComposeToEcr -Path $composeFile -Session $session -RegistryAlias $aliases -CreateRepository -Service web)
            @($results | Where-Object Status -EQ 'Pushed' | ForEach-Object { $_.Service }) | Should -Be @('web')
        }

        It 'resolves a relative Path against the location' {
            Push-Location $project
            try {
                $results = @(Push-ComposeToEcr -Path 'compose.yaml' -Session $session -RegistryAlias $aliases -CreateRepository -Service api)
            }
            finally {
                Pop-Location
            }

            $results.Status | Should -Contain 'Pushed'
        }

        It 'finds compose.yaml in the location without Path' {
            Push-Location $project
            try {
                $results = @(Push-ComposeToEcr -Session $session -RegistryAlias $aliases -CreateRepository -Service web)
            }
            finally {
                Pop-Location
            }

            $results.Status | Should -Contain 'Pushed'
        }

        It 'reads variables from -EnvFile' {
            $envFile = Join-Path $state 'registry.env'
            Set-Content -Path $envFile -Value "REGISTRY=$registryHost" -Encoding utf8
            $previous = $env:REGISTRY
            $env:REGISTRY = $null
            try {
                $results = @(Push-ComposeToEcr -Path $composeFile -EnvFile $envFile -Session $session -RegistryAlias $aliases -CreateRepository -Service web)
            }
            finally {
                $env:REGISTRY = $previous
            }

            $results[0].Reference | Should -Be "$registryHost/hello/web:1.0"
            $results[0].Status | Should -Be 'Pushed'
        }

        It 'fails for a missing compose file' {
            $failure = $null
            try { Push-ComposeToEcr -Path (Join-Path $state 'missing.yaml') -Session $session } catch { $failure = $_ }
            $failure.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        }
    }

    Context '-WhatIf' {
        BeforeAll {
            $image = "$registryHost/hello/whatif:1.0"
            Invoke-Docker @('tag', "$registryHost/hello/web:1.0", $image)
            $whatIfCompose = New-ComposeFile -Image $image
        }

        It 'returns nothing' {
            $results = Push-ComposeToEcr -Path $whatIfCompose -Session $session -RegistryAlias $aliases -CreateRepository -WhatIf
            $results | Should -BeNullOrEmpty
        }

        It 'pushes nothing' {
            $null = Push-ComposeToEcr -Path $whatIfCompose -Session $session -RegistryAlias $aliases -CreateRepository -WhatIf
            Get-RepositoryStatus -Repository 'hello/whatif' | Should -Be 404
        }

        It 'prints the plan' {
            # "What if" lines go to the host, not to a stream, so a child pwsh prints them.
            $script = "Import-Module '$manifestPath'; " +
                "`$session = Get-EcrMfaSession -SerialNumber '$($standIns.serialNumber)' -TokenCode '123456'; " +
                "Push-ComposeToEcr -Path '$whatIfCompose' -Session `$session -RegistryAlias @{ '$registryHost' = '$ecrHost' } -CreateRepository -WhatIf"
            $arguments = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-Command', $script)
            $output = & $pwsh[0] @arguments 2>&1 | Out-String
            $output | Should -Match ([regex]::Escape("What if: Push $image of single to registry $registryHost, repository hello/whatif."))
        }

        It 'prints skipped images in the plan' {
            $script = "Import-Module '$manifestPath'; " +
                "`$session = Get-EcrMfaSession -SerialNumber '$($standIns.serialNumber)' -TokenCode '123456'; " +
                "Push-ComposeToEcr -Path '$composeFile' -Session `$session -RegistryAlias @{ '$registryHost' = '$ecrHost' } -WhatIf"
            $arguments = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-Command', $script)
            $output = & $pwsh[0] @arguments 2>&1 | Out-String
            $output | Should -Match 'What if: Skip docker\.io/library/redis:7-alpine of cache: '
        }
    }

    Context 'failed image' {
        BeforeAll {
            $folder = Join-Path $state 'partial'
            $null = New-Item -ItemType Directory -Path $folder -Force
            $partialCompose = Join-Path $folder 'compose.yaml'
            Set-Content -Path $partialCompose -Encoding utf8 -Value @"
services:
  web:
    image: $registryHost/hello/web:1.0
  missing:
    image: $registryHost/hello/missing:1.0
"@
            $records = @(Push-ComposeToEcr -Path $partialCompose -Session $session -RegistryAlias $aliases -CreateRepository *>&1)
            $results = @($records | Where-Object { $_.PSObject.TypeNames -contains 'EcrCompose.PushResult' })
            $failures = @($records | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
        }

        It 'still pushes the other image' {
            ($results | Where-Object { $_.Service -contains 'web' }).Status | Should -Be 'Pushed'
        }

        It 'returns the failed image' {
            ($results | Where-Object { $_.Service -contains 'missing' }).Status | Should -Be 'Failed'
        }

        It 'writes one error for it' {
            $failures.Count | Should -Be 1
        }

        It 'targets the image in the error' {
            $failures[0].TargetObject | Should -Match 'hello/missing'
        }

        It 'gives the error an id' {
            $failures[0].FullyQualifiedErrorId | Should -Match '^\w+,Push-ComposeToEcr$'
        }
    }

    Context 'ECR repositories' {
        BeforeAll {
            $image = "$registryHost/hello/new-repository:1.0"
            Invoke-Docker @('tag', "$registryHost/hello/web:1.0", $image)
            $newRepositoryCompose = New-ComposeFile -Image $image
            $records = @(Push-ComposeToEcr -Path $newRepositoryCompose -Session $session -RegistryAlias $aliases *>&1)
            $missing = @($records | Where-Object { $_.PSObject.TypeNames -contains 'EcrCompose.PushResult' })
            $missingErrors = @($records | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] })
        }

        It 'fails an image whose repository is missing' {
            $missing[0].Status | Should -Be 'Failed'
        }

        It 'reports RepositoryNotFound' {
            $missingErrors[0].FullyQualifiedErrorId | Should -Be 'RepositoryNotFound,Push-ComposeToEcr'
        }

        It 'suggests -CreateRepository' {
            $missingErrors[0].Exception.Message | Should -Match 'CreateRepository'
        }

        It 'creates the repository with -CreateRepository' {
            $created = Push-ComposeToEcr -Path $newRepositoryCompose -Session $session -RegistryAlias $aliases -CreateRepository
            $created.Status | Should -Be 'Pushed'
        }

        It 'pushes to the created repository without -CreateRepository' {
            $again = Push-ComposeToEcr -Path $newRepositoryCompose -Session $session -RegistryAlias $aliases
            $again.Status | Should -Be 'Pushed'
        }
    }

    Context 'other image sources' {
        It 'pushes a docker archive given by a relative path' {
            $image = "$registryHost/hello/archive:1.0"
            Invoke-Docker @('tag', "$registryHost/hello/web:1.0", $image)
            Invoke-Docker @('save', '--output', (Join-Path $state 'archive.tar'), $image)
            Invoke-Docker @('rmi', $image)
            $archiveCompose = New-ComposeFile -Image $image -Name 'archive'

            Push-Location $state
            try {
                $result = Push-ComposeToEcr -Path $archiveCompose -Session $session -RegistryAlias $aliases -CreateRepository `
                    -Source @{ archive = 'docker-archive:archive.tar' }
            }
            finally {
                Pop-Location
            }

            $result.Status | Should -Be 'Pushed'
            Get-RepositoryStatus -Repository 'hello/archive' | Should -Be 200
        }
    }

    Context '-CompressionLevel' {
        It 'pushes with the fastest level' {
            $image = "$registryHost/hello/fastest:1.0"
            Invoke-Docker @('tag', "$registryHost/hello/web:1.0", $image)
            $fastestCompose = New-ComposeFile -Image $image -Name 'fastest'
            $result = Push-ComposeToEcr -Path $fastestCompose -Session $session -RegistryAlias $aliases -CreateRepository -CompressionLevel 1
            $result.Status | Should -Be 'Pushed'
            Get-RepositoryStatus -Repository 'hello/fastest' | Should -Be 200
        }

        It 'rejects a level above 12 before any call' {
            { Push-ComposeToEcr -Path $composeFile -Session $session -RegistryAlias $aliases -CompressionLevel 13 } |
                Should -Throw -ErrorId 'ParameterArgumentValidationError,Push-ComposeToEcr'
        }
    }

    Context '-Via Docker' {
        It 'pushes through the engine' {
            $result = Push-ComposeToEcr -Path $composeFile -Session $session -RegistryAlias $aliases -CreateRepository -Service web -Via Docker
            $result.Status | Should -Be 'Pushed'
            $result.Via | Should -Be 'docker'
        }
    }

    Context '-Strict' {
        It 'fails the Docker Hub image instead of skipping it' {
            $records = @(Push-ComposeToEcr -Path $composeFile -Session $session -RegistryAlias $aliases -CreateRepository -Strict -ErrorAction SilentlyContinue *>&1)
            $results = @($records | Where-Object { $_.PSObject.TypeNames -contains 'EcrCompose.PushResult' })
            ($results | Where-Object { $_.Service -contains 'cache' }).Status | Should -Be 'Failed'
        }
    }
}
