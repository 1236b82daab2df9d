# End-to-end tests: an MFA session, a push of examples/hello-compose, and a docker login, each
# checked against the registry's own API and the docker CLI. Runs against the STS gate, Debian's
# docker-registry and a private dockerd, all on 127.0.0.1.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'StandIns.psm1') -Force
    $context = New-StandInTestContext -Name e2e -Services sts, registry, engine -BuildExample
    $state = $context.State
    $standIns = $context.StandIns
    $registryHost = $context.RegistryHost
    $aliases = $context.Aliases
    $composeFile = $context.ComposeFile
    $builtImages = $context.BuiltImages
    $registryAuthorization = $context.RegistryAuthorization
    $longTermSecrets = $context.LongTermSecrets

    # Reads a manifest from the registry's own API, as docker pull would ask for it.
    function Get-RegistryManifest {
        param([string] $Repository, [string] $Reference)

        $accept = @(
            'application/vnd.docker.distribution.manifest.v2+json'
            'application/vnd.docker.distribution.manifest.list.v2+json'
            'application/vnd.oci.image.manifest.v1+json'
            'application/vnd.oci.image.index.v1+json'
        ) -join ', '
        $response = Invoke-WebRequest -Uri "$($standIns.registry.url)/v2/$Repository/manifests/$Reference" `
            -Headers @{ Authorization = $registryAuthorization; Accept = $accept } -NoProxy -SkipHttpErrorCheck
        [pscustomobject] @{
            StatusCode = [int] $response.StatusCode
            Digest = @($response.Headers['Docker-Content-Digest'])[0]
            MediaType = @($response.Headers['Content-Type'])[0]
        }
    }

    # Returns the repositories of the registry's catalog, sorted.
    function Get-RegistryCatalog {
        $response = Invoke-RestMethod -Uri "$($standIns.registry.url)/v2/_catalog" `
            -Headers @{ Authorization = $registryAuthorization } -NoProxy
        return @($response.repositories | Sort-Object)
    }
}

AfterAll {
    Remove-StandInTestContext -Context $context
}

Describe 'End to end' {
    It 'builds the example images' {
        $builtImages | Should -Be @("$registryHost/hello/web:1.0", "$registryHost/hello/api:1.0")
    }

    Context 'wrong MFA code' {
        BeforeAll {
            $catalogBefore = Get-RegistryCatalog
            $records = @(& {
                    try {
                        Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode $standIns.wrongTokenCode |
                            Push-ComposeToEcr -Path $composeFile -RegistryAlias $aliases -CreateRepository -Verbose -Debug
                    }
                    catch {
                        $_
                    }
                } *>&1)
            $failure = $records | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] } | Select-Object -Last 1
        }

        It 'fails with MfaCodeRejected' {
            $failure.FullyQualifiedErrorId | Should -Be 'MfaCodeRejected,Get-EcrMfaSession'
        }

        It 'explains the failure' {
            $failure.Exception.Message | Should -Match 'MFA code'
        }

        It 'pushes nothing' {
            (Get-RegistryCatalog) -join ', ' | Should -Be ($catalogBefore -join ', ')
        }

        It 'returns no result' {
            @($records | Where-Object { $_.PSObject.TypeNames -contains 'EcrCompose.PushResult' }) | Should -BeNullOrEmpty
        }

        It 'writes no secret to any stream' {
            Find-SecretName -Text (ConvertTo-VisibleText $records) -Secrets $longTermSecrets | Should -BeNullOrEmpty
        }
    }

    Context 'session piped to a push' {
        BeforeAll {
            # Dot-sourced, so that -OutVariable sets $session in this scope.
            $records = @(. {
                    Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456' -OutVariable session |
                        Push-ComposeToEcr -Path $composeFile -RegistryAlias $aliases -CreateRepository -Verbose -Debug
                } *>&1)
            $results = @($records | Where-Object { $_.PSObject.TypeNames -contains 'EcrCompose.PushResult' })
            $pushed = @($results | Where-Object Status -EQ 'Pushed')
            $secrets = New-SecretTable -StandIns $standIns -Session $session[0]
        }

        It 'pushes two images' {
            $pushed.Count | Should -Be 2
        }

        It 'stores <_> under its repository and tag' -ForEach 'hello/web', 'hello/api' {
            $manifest = Get-RegistryManifest -Repository $_ -Reference '1.0'
            $manifest.StatusCode | Should -Be 200
        }

        It 'stores <_> with the digest the cmdlet returned' -ForEach 'hello/web', 'hello/api' {
            $repository = $_
            $result = $pushed | Where-Object Repository -EQ $repository
            $manifest = Get-RegistryManifest -Repository $repository -Reference '1.0'
            $manifest.Digest | Should -Be $result.Digest
        }

        It 'stores <_> as an image manifest' -ForEach 'hello/web', 'hello/api' {
            $manifest = Get-RegistryManifest -Repository $_ -Reference '1.0'
            $manifest.MediaType | Should -BeIn @(
                'application/vnd.docker.distribution.manifest.v2+json'
                'application/vnd.oci.image.manifest.v1+json'
            )
        }

        It 'serves <_> by digest too' -ForEach 'hello/web', 'hello/api' {
            $repository = $_
            $result = $pushed | Where-Object Repository -EQ $repository
            (Get-RegistryManifest -Repository $repository -Reference $result.Digest).StatusCode | Should -Be 200
        }

        It 'pushes only the ECR images' {
            (Get-RegistryCatalog) -join ', ' | Should -Be 'hello/api, hello/web'
        }

        It 'writes no secret to any stream' {
            Find-SecretName -Text (ConvertTo-VisibleText $records) -Secrets $secrets | Should -BeNullOrEmpty
        }
    }

    Context 'docker CLI after Connect-EcrRegistry' {
        BeforeAll {
            $configFolder = Join-Path $state 'cli-docker-config'
            $null = New-Item -ItemType Directory -Path $configFolder -Force
            $session = Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456'
            $secrets = New-SecretTable -StandIns $standIns -Session $session

            $records = @(& {
                    $session | Connect-EcrRegistry -Registry $registryHost -RegistryAlias $aliases -DockerConfigPath $configFolder -Verbose -Debug
                } *>&1)

            $image = "$registryHost/hello/cli:1.0"
            $previousConfig = $env:DOCKER_CONFIG
            $env:DOCKER_CONFIG = $configFolder
            try {
                $dockerOutput = @(& docker tag "$registryHost/hello/web:1.0" $image 2>&1)
                $dockerOutput += @(& docker push $image 2>&1)
                $dockerExitCode = $LASTEXITCODE
            }
            finally {
                $env:DOCKER_CONFIG = $previousConfig
            }

            $config = Get-Content -Path (Join-Path $configFolder 'config.json') -Raw | ConvertFrom-Json
        }

        It 'lets docker push' {
            $dockerExitCode | Should -Be 0 -Because ($dockerOutput -join "`n")
        }

        It 'stores the image pushed by docker' {
            (Get-RegistryManifest -Repository 'hello/cli' -Reference '1.0').StatusCode | Should -Be 200
        }

        It 'keys the config by the bare host' {
            @($config.auths.PSObject.Properties.Name) | Should -Be @($registryHost)
        }

        It 'writes no secret to any stream' {
            $text = (ConvertTo-VisibleText $records) + "`n" + ($dockerOutput -join "`n")
            Find-SecretName -Text $text -Secrets $secrets | Should -BeNullOrEmpty
        }
    }
}
