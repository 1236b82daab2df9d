# Tests of Connect-EcrRegistry against moto behind the STS gate and Debian's docker-registry.
# Every login goes to the local registry through -RegistryAlias: the library checks a login with
# GET /v2/ on the registry, and no test may reach a real ECR host.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'StandIns.psm1') -Force
    $context = New-StandInTestContext -Name login -Services sts, registry -WithSession
    $state = $context.State
    $standIns = $context.StandIns
    $registryHost = $context.RegistryHost
    $ecrHost = $context.EcrHost
    $aliases = $context.Aliases
    $session = $context.Session
    $secrets = $context.Secrets

    function New-DockerConfigFolder {
        $folder = Join-Path $state "docker-config-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
        $null = New-Item -ItemType Directory -Path $folder
        return $folder
    }
}

AfterAll {
    Remove-StandInTestContext -Context $context
}

Describe 'Connect-EcrRegistry' {
    Context 'session from the pipeline' {
        BeforeAll {
            $configFolder = New-DockerConfigFolder
            $before = [datetime]::UtcNow
            $records = @($session | Connect-EcrRegistry -Registry $registryHost -RegistryAlias $aliases `
                    -DockerConfigPath $configFolder -PassThru -Verbose -Debug *>&1)
            $login = @($records | Where-Object { $_.PSObject.TypeNames -contains 'EcrCompose.LoginResult' })
            $configPath = Join-Path $configFolder 'config.json'
        }

        It 'returns one login' {
            $login.Count | Should -Be 1
        }

        It 'names the registry' {
            $login[0].Registry | Should -Be $registryHost
        }

        It 'names the ECR host' {
            $login[0].EcrHost | Should -Be $ecrHost
        }

        It 'names the account' {
            $login[0].AccountId | Should -Be $standIns.accountId
        }

        It 'names the region' {
            $login[0].Region | Should -Be $standIns.region
        }

        It 'expires in the future, in UTC' {
            $login[0].ExpiresAt | Should -BeGreaterThan $before
            $login[0].ExpiresAt.Kind | Should -Be ([System.DateTimeKind]::Utc)
        }

        It 'names the config file' {
            $login[0].DockerConfig | Should -Be $configPath
        }

        It 'writes the bare host key' {
            $config = Get-Content -Path $configPath -Raw | ConvertFrom-Json
            @($config.auths.PSObject.Properties.Name) | Should -Be @($registryHost)
        }

        It 'writes the ECR password as auth' {
            $config = Get-Content -Path $configPath -Raw | ConvertFrom-Json
            $auth = $config.auths.$registryHost.auth
            ($auth -eq $secrets['the docker auth value']) | Should -BeTrue -Because 'auth is base64 of AWS:<ECR password>'
        }

        It 'writes no secret to any stream' {
            Find-SecretName -Text (ConvertTo-VisibleText $records) -Secrets $secrets | Should -BeNullOrEmpty
        }
    }

    Context 'options' {
        It 'resolves a relative DockerConfigPath against the location' {
            $parent = New-DockerConfigFolder
            Push-Location $parent
            try {
                $login = Connect-EcrRegistry -Registry $registryHost -Session $session -RegistryAlias $aliases -DockerConfigPath 'relative' -PassThru
            }
            finally {
                Pop-Location
            }

            $login.DockerConfig | Should -Be (Join-Path $parent 'relative/config.json')
            Join-Path $parent 'relative/config.json' | Should -Exist
        }

        It 'uses DOCKER_CONFIG without DockerConfigPath' {
            $configFolder = New-DockerConfigFolder
            $previous = $env:DOCKER_CONFIG
            $env:DOCKER_CONFIG = $configFolder
            try {
                $login = Connect-EcrRegistry -Registry $registryHost -Session $session -RegistryAlias $aliases -PassThru
            }
            finally {
                $env:DOCKER_CONFIG = $previous
            }

            $login.DockerConfig | Should -Be (Join-Path $configFolder 'config.json')
        }

        It 'logs in with the default credentials without a session' {
            $login = Connect-EcrRegistry -Registry $registryHost -RegistryAlias $aliases -DockerConfigPath (New-DockerConfigFolder) -PassThru
            $login.Registry | Should -Be $registryHost
        }

        It 'writes no object without -PassThru' {
            $configFolder = New-DockerConfigFolder
            $output = $session | Connect-EcrRegistry -Registry $registryHost -RegistryAlias $aliases -DockerConfigPath $configFolder
            $output | Should -BeNullOrEmpty
            Join-Path $configFolder 'config.json' | Should -Exist
        }

        It 'writes a tagged information line per registry' {
            $null = $session | Connect-EcrRegistry -Registry $registryHost -RegistryAlias $aliases `
                -DockerConfigPath (New-DockerConfigFolder) -InformationVariable information
            $lines = @($information | Where-Object { $_.Tags -contains 'Login' })
            $lines.Count | Should -Be 1
            $lines[0].Tags | Should -Contain 'EcrCompose'
            "$($lines[0].MessageData)" | Should -BeLike "Logged docker in to $registryHost until *"
        }

        It 'changes nothing with -WhatIf' {
            $configFolder = New-DockerConfigFolder
            $result = Connect-EcrRegistry -Registry $registryHost -Session $session -RegistryAlias $aliases -DockerConfigPath $configFolder -WhatIf
            $result | Should -BeNullOrEmpty
            Join-Path $configFolder 'config.json' | Should -Not -Exist
        }
    }

    Context 'failures' {
        It 'rejects a registry that is not ECR' {
            $failure = $null
            try { Connect-EcrRegistry -Registry 'docker.io' -Session $session -DockerConfigPath (New-DockerConfigFolder) } catch { $failure = $_ }
            $failure.FullyQualifiedErrorId | Should -Be 'NotAnEcrRegistry,Connect-EcrRegistry'
            $failure.CategoryInfo.Category | Should -Be 'InvalidArgument'
        }

        It 'rejects an expired session before calling AWS' {
            $expired = [EcrCompose.MfaSession] @{
                AccessKeyId = $session.AccessKeyId
                SecretAccessKey = $session.SecretAccessKey
                SessionToken = $session.SessionToken
                Expiration = [datetime]::UtcNow.AddMinutes(-1)
                SerialNumber = $session.SerialNumber
                AccountId = $session.AccountId
                Region = $session.Region
            }
            $records = @(& {
                    try { Connect-EcrRegistry -Registry $registryHost -Session $expired -RegistryAlias $aliases -DockerConfigPath (New-DockerConfigFolder) }
                    catch { $_ }
                } *>&1)
            $failure = $records | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] } | Select-Object -Last 1
            $failure.FullyQualifiedErrorId | Should -Be 'SessionExpired,Connect-EcrRegistry'
            $failure.CategoryInfo.Category | Should -Be 'AuthenticationError'
            Find-SecretName -Text (ConvertTo-VisibleText $records) -Secrets $secrets | Should -BeNullOrEmpty
        }

        It 'rejects a session without a secret access key' {
            $incomplete = [EcrCompose.MfaSession] @{ AccessKeyId = $session.AccessKeyId; Expiration = $session.Expiration }
            $failure = $null
            try { Connect-EcrRegistry -Registry $registryHost -Session $incomplete -RegistryAlias $aliases } catch { $failure = $_ }
            $failure.FullyQualifiedErrorId | Should -Be 'MfaSessionIncomplete,Connect-EcrRegistry'
        }

        It 'reports an unreachable registry as ConnectionError' {
            # Port 9 (discard) has no listener on the loopback address of a test machine.
            $failure = $null
            try {
                Connect-EcrRegistry -Registry '127.0.0.1:9' -Session $session -RegistryAlias @{ '127.0.0.1:9' = $ecrHost } `
                    -DockerConfigPath (New-DockerConfigFolder)
            }
            catch { $failure = $_ }
            $failure.CategoryInfo.Category | Should -Be 'ConnectionError'
            $failure.TargetObject | Should -Not -BeNullOrEmpty
        }
    }
}
