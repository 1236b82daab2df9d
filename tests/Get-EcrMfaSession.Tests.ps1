# Tests of Get-EcrMfaSession against moto behind the STS gate.
# The module under test is $env:ECR_COMPOSE_MODULE (the built layout), or module/ with the library
# that cargo built in target/release.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'StandIns.psm1') -Force
    $context = New-StandInTestContext -Name mfa -Services sts
    $manifestPath = $context.ManifestPath
    $state = $context.State
    $standIns = $context.StandIns
    $longTermSecrets = $context.LongTermSecrets

    # A cached session would answer without asking STS, so each context gets its own cache.
    function Use-NewSessionCache {
        $env:ECR_COMPOSE_CACHE_DIR = Join-Path $state "cache-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    }

    Use-NewSessionCache
}

AfterAll {
    Remove-StandInTestContext -Context $context
}

Describe 'Get-EcrMfaSession' {
    Context 'good code' {
        BeforeAll {
            Use-NewSessionCache
            $before = [datetime]::UtcNow
            $records = @(Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456' -Verbose -Debug *>&1)
            $after = [datetime]::UtcNow
            $session = @($records | Where-Object { $_ -is [EcrCompose.MfaSession] })
            $secrets = New-SecretTable -StandIns $standIns -Session $session[0]
        }

        It 'returns one session' {
            $session.Count | Should -Be 1
        }

        It 'sets the account id' {
            $session[0].AccountId | Should -Be $standIns.accountId
        }

        It 'sets the serial number' {
            $session[0].SerialNumber | Should -Be $standIns.serialNumber
        }

        It 'takes the region from AWS_REGION' {
            $session[0].Region | Should -Be $standIns.region
        }

        It 'sets an access key id' {
            $session[0].AccessKeyId | Should -Not -BeNullOrEmpty
        }

        It 'sets a secret access key' {
            $session[0].SecretAccessKey | Should -Not -BeNullOrEmpty
        }

        It 'sets a session token' {
            $session[0].SessionToken | Should -Not -BeNullOrEmpty
        }

        It 'returns the expiration in UTC' {
            $session[0].Expiration.Kind | Should -Be ([System.DateTimeKind]::Utc)
        }

        It 'lasts 12 hours by default' {
            # STS reports whole seconds, so allow a few seconds either side.
            $session[0].Expiration | Should -BeGreaterOrEqual $before.AddSeconds(43200 - 5)
            $session[0].Expiration | Should -BeLessOrEqual $after.AddSeconds(43200 + 5)
        }

        It 'writes verbose messages' {
            @($records | Where-Object { $_ -is [System.Management.Automation.VerboseRecord] }).Count | Should -BeGreaterThan 0
        }

        It 'writes debug messages with -Debug' {
            @($records | Where-Object { $_ -is [System.Management.Automation.DebugRecord] }).Count | Should -BeGreaterThan 0
        }

        It 'writes no secret to any stream' {
            Find-SecretName -Text (ConvertTo-VisibleText $records) -Secrets $secrets | Should -BeNullOrEmpty
        }
    }

    Context 'duration' {
        It 'lasts DurationInSeconds' {
            Use-NewSessionCache
            $before = [datetime]::UtcNow
            $session = Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456' -DurationInSeconds 900
            $session.Expiration | Should -BeGreaterOrEqual $before.AddSeconds(900 - 5)
            $session.Expiration | Should -BeLessOrEqual ([datetime]::UtcNow.AddSeconds(900 + 5))
        }
    }

    Context 'views of a session' {
        BeforeAll {
            Use-NewSessionCache
            $session = Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456'
            $secrets = New-SecretTable -Session $session
        }

        It 'Format-Table shows no secret' {
            Find-SecretName -Text ($session | Format-Table | Out-String -Width 4096) -Secrets $secrets | Should -BeNullOrEmpty
        }

        It 'Format-Table shows the account' {
            $session | Format-Table | Out-String -Width 4096 | Should -Match $standIns.accountId
        }

        It 'Format-List shows no secret' {
            Find-SecretName -Text ($session | Format-List | Out-String -Width 4096) -Secrets $secrets | Should -BeNullOrEmpty
        }

        It 'Format-List shows the serial number' {
            $session | Format-List | Out-String -Width 4096 | Should -Match ([regex]::Escape($standIns.serialNumber))
        }

        It 'ToString() shows no secret' {
            Find-SecretName -Text $session.ToString() -Secrets $secrets | Should -BeNullOrEmpty
        }

        It 'string expansion shows no secret' {
            Find-SecretName -Text "$session" -Secrets $secrets | Should -BeNullOrEmpty
        }

        It 'Out-String shows no secret' {
            Find-SecretName -Text ($session | Out-String -Width 4096) -Secrets $secrets | Should -BeNullOrEmpty
        }

        It 'Format-List * shows the secrets on request' {
            # Proves that Find-SecretName finds what the other tests look for.
            Find-SecretName -Text ($session | Format-List * | Out-String -Width 4096) -Secrets $secrets | Should -HaveCount 2
        }

        It 'Out-String shows the time left' {
            $session | Out-String -Width 4096 | Should -Match '\b1[01]:\d\d:\d\d\b'
        }

        It 'computes TimeLeft from the expiration' {
            $session.TimeLeft.TotalHours | Should -BeGreaterThan 11.9
            $session.TimeLeft.TotalHours | Should -BeLessOrEqual 12
        }

        It 'shows an expired session as expired' {
            $expired = [EcrCompose.MfaSession] @{ AccountId = '123456789012'; Expiration = [datetime]::UtcNow.AddMinutes(-1) }
            $expired.TimeLeft | Should -Be ([timespan]::Zero)
            $expired | Out-String -Width 4096 | Should -Match 'expired'
        }

        It 'Format-Table shows the expiration' {
            $session | Format-Table | Out-String -Width 4096 | Should -Match ([regex]::Escape($session.Expiration.ToString('yyyy-MM-dd HH:mm')))
        }
    }

    Context 'wrong code' {
        BeforeAll {
            Use-NewSessionCache
            $records = @(& {
                    try {
                        Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode $standIns.wrongTokenCode -Verbose -Debug
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

        It 'has the AuthenticationError category' {
            $failure.CategoryInfo.Category | Should -Be 'AuthenticationError'
        }

        It 'targets the serial number' {
            $failure.TargetObject | Should -Be $standIns.serialNumber
        }

        It 'keeps the STS error code' {
            $failure.Exception.ServiceCode | Should -Be 'AccessDenied'
        }

        It 'names the MFA device in the message' {
            $failure.Exception.Message | Should -Match ([regex]::Escape($standIns.serialNumber))
        }

        It 'does not repeat the code' {
            $failure.Exception.Message | Should -Not -Match $standIns.wrongTokenCode
        }

        It 'returns no session' {
            @($records | Where-Object { $_ -is [EcrCompose.MfaSession] }).Count | Should -Be 0
        }

        It 'writes no secret to any stream' {
            Find-SecretName -Text (ConvertTo-VisibleText $records) -Secrets $longTermSecrets | Should -BeNullOrEmpty
        }
    }

    Context 'parameter validation' {
        It 'rejects <Case>' -ForEach @(
            @{ Case = 'a 5-digit code'; Parameters = @{ TokenCode = '12345' } }
            @{ Case = 'a 7-digit code'; Parameters = @{ TokenCode = '1234567' } }
            @{ Case = 'a code with letters'; Parameters = @{ TokenCode = '12a456' } }
            @{ Case = 'a short serial number'; Parameters = @{ SerialNumber = 'GAHT1234' } }
            @{ Case = 'a serial number with spaces'; Parameters = @{ SerialNumber = 'arn:aws:iam::123456789012:mfa/my device' } }
            @{ Case = 'a 257-character serial number'; Parameters = @{ SerialNumber = 'A' * 257 } }
            @{ Case = 'a duration under 900 s'; Parameters = @{ DurationInSeconds = 899 } }
            @{ Case = 'a duration over 129600 s'; Parameters = @{ DurationInSeconds = 129601 } }
            @{ Case = 'a relative endpoint URL'; Parameters = @{ EndpointUrl = '127.0.0.1:4566' } }
            @{ Case = 'an ftp endpoint URL'; Parameters = @{ EndpointUrl = 'ftp://127.0.0.1/' } }
            @{ Case = 'a region with spaces'; Parameters = @{ Region = 'us east 1' } }
            @{ Case = 'an empty profile name'; Parameters = @{ ProfileName = '' } }
        ) {
            $arguments = @{ SerialNumber = $standIns.serialNumber; TokenCode = '123456' }
            foreach ($key in $Parameters.Keys) { $arguments[$key] = $Parameters[$key] }

            $failure = $null
            try { Get-EcrMfaSession @arguments } catch { $failure = $_ }
            $failure.FullyQualifiedErrorId | Should -BeLike 'ParameterArgumentValidationError*,Get-EcrMfaSession'
        }

        It 'explains an invalid code' {
            $failure = $null
            try { Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '12345' } catch { $failure = $_ }
            $failure.Exception.Message | Should -Match '6 digits'
        }

        It 'explains an invalid serial number' {
            $failure = $null
            try { Get-EcrMfaSession -SerialNumber 'not a serial' -TokenCode '123456' } catch { $failure = $_ }
            $failure.Exception.Message | Should -Match 'arn:aws:iam::123456789012:mfa/'
        }
    }

    Context 'validation in the library' {
        It 'rejects <Case> with <ErrorId>' -ForEach @(
            @{ Case = 'an account id of 5 digits'; Serial = 'arn:aws:iam::12345:mfa/dev'; ErrorId = 'InvalidSerialNumber' }
            @{ Case = 'an IAM user ARN'; Serial = 'arn:aws:iam::123456789012:user/dev'; ErrorId = 'InvalidSerialNumber' }
        ) {
            Use-NewSessionCache
            $failure = $null
            try { Get-EcrMfaSession -SerialNumber $Serial -TokenCode '123456' } catch { $failure = $_ }
            $failure.FullyQualifiedErrorId | Should -Be "$ErrorId,Get-EcrMfaSession"
            $failure.CategoryInfo.Category | Should -Be 'InvalidArgument'
        }

        It 'rejects an unknown profile with ProfileNotFound' {
            Use-NewSessionCache
            $failure = $null
            try { Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456' -ProfileName 'no-such-profile' } catch { $failure = $_ }
            $failure.FullyQualifiedErrorId | Should -Be 'ProfileNotFound,Get-EcrMfaSession'
            $failure.CategoryInfo.Category | Should -Be 'ObjectNotFound'
        }

        It 'reports an unreachable endpoint as ConnectionError' {
            Use-NewSessionCache
            # Port 9 (discard) has no listener on the loopback address of a test machine.
            $failure = $null
            try { Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456' -EndpointUrl 'http://127.0.0.1:9' } catch { $failure = $_ }
            $failure.CategoryInfo.Category | Should -Be 'ConnectionError'
        }
    }

    Context 'session cache' {
        BeforeAll {
            Use-NewSessionCache
            $serial = $standIns.serialNumber
            Reset-StandInStats -StandIns $standIns
            $first = Get-EcrMfaSession -SerialNumber $serial -TokenCode '123456'
            $second = Get-EcrMfaSession -SerialNumber $serial -TokenCode '123456'
            $cachedOnly = Get-EcrMfaSession -SerialNumber $serial -CachedOnly
            $stsCallsAfterReuse = (Get-StandInStats -StandIns $standIns).GetSessionToken
        }

        It 'gets the first session from STS' {
            $first.FromCache | Should -BeFalse
        }

        It 'reuses the cached session' {
            $second.FromCache | Should -BeTrue
            $second.AccessKeyId | Should -Be $first.AccessKeyId
        }

        It 'returns the cached session without a code' {
            $cachedOnly.AccessKeyId | Should -Be $first.AccessKeyId
        }

        It 'calls STS once for three sessions' {
            $stsCallsAfterReuse | Should -Be 1
        }

        It 'reuses the cached session without a code' {
            $reused = Get-EcrMfaSession -SerialNumber $serial
            $reused.FromCache | Should -BeTrue
            $reused.AccessKeyId | Should -Be $first.AccessKeyId
        }

        It 'gets a new session with -Force' {
            $forced = Get-EcrMfaSession -SerialNumber $serial -TokenCode '123456' -Force
            $forced.FromCache | Should -BeFalse
        }

        It 'bypasses the cache with -NoCache' {
            $uncached = Get-EcrMfaSession -SerialNumber $serial -TokenCode '123456' -NoCache
            $uncached.FromCache | Should -BeFalse
        }

        It 'rejects -Force with -NoCache' {
            $failure = $null
            try { Get-EcrMfaSession -SerialNumber $serial -TokenCode '123456' -Force -NoCache } catch { $failure = $_ }
            $failure.FullyQualifiedErrorId | Should -Be 'ConflictingCacheSwitches,Get-EcrMfaSession'
        }

        It 'rejects -CachedOnly with -TokenCode' {
            $failure = $null
            try { Get-EcrMfaSession -SerialNumber $serial -TokenCode '123456' -CachedOnly } catch { $failure = $_ }
            $failure.FullyQualifiedErrorId | Should -Be 'ConflictingCacheSwitches,Get-EcrMfaSession'
        }

        It 'writes the cache to -CachePath' {
            $folder = Join-Path $state 'explicit-cache'
            $null = Get-EcrMfaSession -SerialNumber $serial -TokenCode '123456' -CachePath $folder
            Join-Path $folder 'sessions.json' | Should -Exist
        }

        It 'clears the cached sessions' {
            $cleared = Clear-EcrMfaSession -PassThru
            $cleared.Removed | Should -BeGreaterThan 0
            $cleared.PSObject.TypeNames | Should -Contain 'EcrCompose.SessionCacheClearResult'
        }

        It 'clears without output unless -PassThru' {
            $null = Get-EcrMfaSession -SerialNumber $serial -TokenCode '123456'
            Clear-EcrMfaSession | Should -BeNullOrEmpty
        }

        It 'clears the profile of a piped session' {
            $piped = Get-EcrMfaSession -SerialNumber $serial -TokenCode '123456'
            $cleared = $piped | Clear-EcrMfaSession -PassThru
            $cleared.ProfileName | Should -Be $piped.ProfileName
            $cleared.Removed | Should -Be 1
        }

        It 'fails -CachedOnly with NoCachedSession after clearing' {
            $null = Clear-EcrMfaSession
            $failure = $null
            try { Get-EcrMfaSession -SerialNumber $serial -CachedOnly } catch { $failure = $_ }
            $failure.FullyQualifiedErrorId | Should -Be 'NoCachedSession,Get-EcrMfaSession'
        }

        It 'clears nothing with -WhatIf' {
            $null = Get-EcrMfaSession -SerialNumber $serial -TokenCode '123456'
            Clear-EcrMfaSession -WhatIf | Should -BeNullOrEmpty
            (Get-EcrMfaSession -SerialNumber $serial -CachedOnly).FromCache | Should -BeTrue
        }
    }

    Context 'prompt for the code' {
        BeforeAll {
            Use-NewSessionCache
            Mock -ModuleName EcrCompose Get-EcrNonInteractiveReason { $null }
            Mock -ModuleName EcrCompose Read-Host { ConvertTo-SecureString -String '123456' -AsPlainText -Force }
            $records = @(Get-EcrMfaSession -SerialNumber $standIns.serialNumber -Verbose -Debug *>&1)
            $session = @($records | Where-Object { $_ -is [EcrCompose.MfaSession] })
        }

        It 'returns a session from STS' {
            $session[0].FromCache | Should -BeFalse
        }

        It 'reads the code as a secure string' {
            Should -Invoke Read-Host -ModuleName EcrCompose -Scope Context -Times 1 -Exactly -ParameterFilter { $AsSecureString }
        }

        It 'names the MFA device in the prompt' {
            Should -Invoke Read-Host -ModuleName EcrCompose -Scope Context -Times 1 -Exactly -ParameterFilter { $Prompt -match [regex]::Escape($standIns.serialNumber) }
        }

        It 'writes the code to no stream' {
            (ConvertTo-VisibleText $records) | Should -Not -Match '\b123456\b'
        }

        It 'does not prompt when a cached session is left' {
            $cached = Get-EcrMfaSession -SerialNumber $standIns.serialNumber
            $cached.FromCache | Should -BeTrue
            Should -Invoke Read-Host -ModuleName EcrCompose -Scope It -Times 0 -Exactly
        }

        It 'prompts for a new session with -Force' {
            $forced = Get-EcrMfaSession -SerialNumber $standIns.serialNumber -Force
            $forced.FromCache | Should -BeFalse
            Should -Invoke Read-Host -ModuleName EcrCompose -Scope It -Times 1 -Exactly
        }

        It 'fails with MissingTokenCode for an empty answer' {
            Mock -ModuleName EcrCompose Read-Host { [System.Security.SecureString]::new() }
            $failure = $null
            try { Get-EcrMfaSession -SerialNumber $standIns.serialNumber -NoCache } catch { $failure = $_ }
            $failure.FullyQualifiedErrorId | Should -Be 'MissingTokenCode,Get-EcrMfaSession'
            $failure.Exception.Message | Should -Match 'none was typed'
        }
    }

    Context 'without a code' {
        It 'fails with MissingTokenCode where it cannot ask' {
            Use-NewSessionCache
            # A runspace without a host user interface cannot prompt, like pwsh -NonInteractive.
            $shell = [powershell]::Create()
            try {
                $null = $shell.AddScript({
                        param($Manifest, $Serial)
                        Import-Module $Manifest
                        try { Get-EcrMfaSession -SerialNumber $Serial } catch { $_ }
                    }).AddArgument($manifestPath).AddArgument($standIns.serialNumber)
                $failure = $shell.Invoke() | Select-Object -Last 1
            }
            finally {
                $shell.Dispose()
            }

            $failure.FullyQualifiedErrorId | Should -Be 'MissingTokenCode,Get-EcrMfaSession'
            $failure.Exception.Message | Should -Match '-TokenCode'
        }
    }

    Context 'non-interactive sessions' {
        It 'fails at once in CI' {
            Use-NewSessionCache
            $previous = $env:CI
            $env:CI = 'true'
            try {
                $failure = $null
                try { Get-EcrMfaSession -SerialNumber $standIns.serialNumber } catch { $failure = $_ }
            }
            finally {
                $env:CI = $previous
            }

            $failure.FullyQualifiedErrorId | Should -Be 'MissingTokenCode,Get-EcrMfaSession'
            $failure.Exception.Message | Should -Match '-TokenCode'
            $failure.Exception.Message | Should -Match '\bCI is set\b'
        }

        It 'fails at once with -NonInteractive' {
            $pwsh = @(Get-PwshCommand)

            $script = "Import-Module '$manifestPath'; " +
                "try { Get-EcrMfaSession -SerialNumber '$($standIns.serialNumber)' -NoCache } " +
                "catch { `$_.FullyQualifiedErrorId; `$_.Exception.Message }"
            $previous = @{ CI = $env:CI; TF_BUILD = $env:TF_BUILD }
            $env:CI = $null
            $env:TF_BUILD = $null
            try {
                $arguments = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-Command', $script)
                $output = @(& $pwsh[0] @arguments 2>&1 | ForEach-Object { "$_" })
            }
            finally {
                $env:CI = $previous.CI
                $env:TF_BUILD = $previous.TF_BUILD
            }

            $output[0] | Should -Be 'MissingTokenCode,Get-EcrMfaSession'
            $output[1] | Should -Match '-TokenCode'
            $output[1] | Should -Match 'runs with -NonInteractive'
        }

        It 'names <Name> as the reason' -ForEach @(
            @{ Name = 'CI'; Value = 'true' }
            @{ Name = 'TF_BUILD'; Value = 'True' }
        ) {
            $previous = @{ CI = $env:CI; TF_BUILD = $env:TF_BUILD }
            $env:CI = $null
            $env:TF_BUILD = $null
            [Environment]::SetEnvironmentVariable($Name, $Value)
            try {
                $reason = InModuleScope EcrCompose { Get-EcrNonInteractiveReason }
            }
            finally {
                $env:CI = $previous.CI
                $env:TF_BUILD = $previous.TF_BUILD
            }

            $reason | Should -Match "^$Name is set"
        }

        It 'does not take CI=false for a CI job' {
            $previous = @{ CI = $env:CI; TF_BUILD = $env:TF_BUILD }
            $env:CI = 'false'
            $env:TF_BUILD = $null
            try {
                $reason = InModuleScope EcrCompose { Get-EcrNonInteractiveReason }
            }
            finally {
                $env:CI = $previous.CI
                $env:TF_BUILD = $previous.TF_BUILD
            }

            $reason | Should -Not -Match '^CI is set'
        }
    }

    Context '-SetEnvironment' {
        BeforeAll {
            Use-NewSessionCache
            $names = 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_REGION'
            $before = @{}
            foreach ($name in $names) { $before[$name] = [Environment]::GetEnvironmentVariable($name) }

            $records = @(Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456' -Region 'us-west-2' -SetEnvironment -Verbose -Debug *>&1)
            $session = @($records | Where-Object { $_ -is [EcrCompose.MfaSession] })[0]
            $after = @{}
            foreach ($name in $names) { $after[$name] = [Environment]::GetEnvironmentVariable($name) }
            $secrets = New-SecretTable -StandIns $standIns -Session $session
        }

        AfterAll {
            foreach ($name in $names) { [Environment]::SetEnvironmentVariable($name, $before[$name]) }
            [AppDomain]::CurrentDomain.SetData('EcrCompose.SessionEnvironment', $null)
        }

        It 'sets AWS_ACCESS_KEY_ID' {
            $after['AWS_ACCESS_KEY_ID'] | Should -Be $session.AccessKeyId
        }

        It 'sets AWS_SECRET_ACCESS_KEY' {
            ($after['AWS_SECRET_ACCESS_KEY'] -ceq $session.SecretAccessKey) | Should -BeTrue
        }

        It 'sets AWS_SESSION_TOKEN' {
            ($after['AWS_SESSION_TOKEN'] -ceq $session.SessionToken) | Should -BeTrue
        }

        It 'sets AWS_REGION to the region of the session' {
            $after['AWS_REGION'] | Should -Be 'us-west-2'
        }

        It 'still returns the session' {
            $session.AccountId | Should -Be $standIns.accountId
        }

        It 'writes no secret to any stream' {
            Find-SecretName -Text (ConvertTo-VisibleText $records) -Secrets $secrets | Should -BeNullOrEmpty
        }

        It 'calls STS with long-term credentials' {
            # STS rejects GetSessionToken signed with session credentials.
            $forced = Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456' -Force
            $forced.FromCache | Should -BeFalse
        }

        It 'keeps the exported session afterwards' {
            $env:AWS_ACCESS_KEY_ID | Should -Be $session.AccessKeyId
        }

        It 'keeps the first saved values across exports' {
            $second = Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456' -Force -SetEnvironment
            $env:AWS_ACCESS_KEY_ID | Should -Be $second.AccessKeyId
            Clear-EcrMfaSession -ProfileName 'other-profile'
            $env:AWS_ACCESS_KEY_ID | Should -Be $second.AccessKeyId -Because 'the exported session belongs to another profile'
            Clear-EcrMfaSession
            $env:AWS_ACCESS_KEY_ID | Should -Be $before['AWS_ACCESS_KEY_ID']
        }

        It 'restores the long-term secret key' {
            ($env:AWS_SECRET_ACCESS_KEY -ceq $before['AWS_SECRET_ACCESS_KEY']) | Should -BeTrue
        }

        It 'removes AWS_SESSION_TOKEN when cleared' {
            $env:AWS_SESSION_TOKEN | Should -BeNullOrEmpty
        }

        It 'restores AWS_REGION when cleared' {
            $env:AWS_REGION | Should -Be $before['AWS_REGION']
        }

        It 'forgets an export whose variables were changed since' {
            $null = Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456' -SetEnvironment
            $env:AWS_SESSION_TOKEN = 'changed-by-the-user'
            try {
                Clear-EcrMfaSession
                $env:AWS_SESSION_TOKEN | Should -Be 'changed-by-the-user'
            }
            finally {
                foreach ($name in $names) { [Environment]::SetEnvironmentVariable($name, $before[$name]) }
            }
        }
    }

    Context 'session from the pipeline' {
        BeforeAll {
            Use-NewSessionCache
            $first = Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456' -Region 'eu-central-1'
            $renewed = $first | Get-EcrMfaSession -TokenCode '123456' -Force
        }

        It 'takes the MFA device of the session' {
            $renewed.SerialNumber | Should -Be $first.SerialNumber
        }

        It 'takes the region of the session' {
            $renewed.Region | Should -Be 'eu-central-1'
        }

        It 'takes the profile of the session' {
            $renewed.ProfileName | Should -Be $first.ProfileName
        }

        It 'names the profile of a session from -ProfileName' {
            Add-Content -Path $standIns.awsConfigFile -Encoding utf8 -Value @(
                '[profile piped]'
                "aws_access_key_id = $($standIns.accessKeyId)"
                "aws_secret_access_key = $($standIns.secretAccessKey)"
            )
            $fromProfile = Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456' -ProfileName 'piped'
            ($fromProfile | Get-EcrMfaSession).ProfileName | Should -Be 'piped'
        }

        It 'gets a new session with -Force' {
            $renewed.FromCache | Should -BeFalse
        }

        It 'returns the cached session without -Force' {
            ($renewed | Get-EcrMfaSession).FromCache | Should -BeTrue
        }
    }

    Context 'log level' {
        AfterEach {
            $env:ECR_COMPOSE_LOG_LEVEL = $null
        }

        It 'sends trace with ECR_COMPOSE_LOG_LEVEL=trace' {
            Use-NewSessionCache
            $env:ECR_COMPOSE_LOG_LEVEL = 'trace'
            $records = @(Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456' -Debug *>&1)
            $debugText = @($records | Where-Object { $_ -is [System.Management.Automation.DebugRecord] } | ForEach-Object Message) -join "`n"
            $debugText | Should -Match 'with log level trace'
        }

        It 'sends debug with -Debug alone' {
            $records = @(Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456' -Debug *>&1)
            $debugText = @($records | Where-Object { $_ -is [System.Management.Automation.DebugRecord] } | ForEach-Object Message) -join "`n"
            $debugText | Should -Match 'with log level debug'
        }

        It 'warns about an invalid value and names it' {
            $env:ECR_COMPOSE_LOG_LEVEL = 'loud'
            $records = @(Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456' *>&1)
            $warning = @($records | Where-Object { $_ -is [System.Management.Automation.WarningRecord] })
            $warning[0].Message | Should -Match "ECR_COMPOSE_LOG_LEVEL 'loud' is invalid"
        }
    }

    Context 'profile defaults' {
        BeforeAll {
            Use-NewSessionCache
            # A profile named with -ProfileName is the only source of credentials, so it has keys.
            Add-Content -Path $standIns.awsConfigFile -Encoding utf8 -Value @(
                '[profile mfa-defaults]'
                "mfa_serial = $($standIns.serialNumber)"
                'duration_seconds = 900'
                "aws_access_key_id = $($standIns.accessKeyId)"
                "aws_secret_access_key = $($standIns.secretAccessKey)"
            )
            $before = [datetime]::UtcNow
            $session = Get-EcrMfaSession -ProfileName 'mfa-defaults' -TokenCode '123456'
        }

        It 'takes the serial number from mfa_serial' {
            $session.SerialNumber | Should -Be $standIns.serialNumber
        }

        It 'takes the duration from duration_seconds' {
            $session.Expiration | Should -BeLessOrEqual ([datetime]::UtcNow.AddSeconds(900 + 5))
            $session.Expiration | Should -BeGreaterOrEqual $before.AddSeconds(900 - 5)
        }

        It 'names the profile' {
            $session.ProfileName | Should -Be 'mfa-defaults'
        }

        It 'fails with MissingSerialNumber for a profile without mfa_serial' {
            Add-Content -Path $standIns.awsConfigFile -Encoding utf8 -Value '[profile no-device]', 'region = us-east-1'
            $failure = $null
            try { Get-EcrMfaSession -ProfileName 'no-device' -TokenCode '123456' } catch { $failure = $_ }
            $failure.FullyQualifiedErrorId | Should -Be 'MissingSerialNumber,Get-EcrMfaSession'
        }
    }

    Context 'stopping the pipeline' {
        It 'cancels a request that hangs' {
            Use-NewSessionCache
            # A listener that accepts connections and never answers keeps STS GetSessionToken waiting.
            $listener = [System.Net.Sockets.TcpListener]::new([System.Net.IPAddress]::Loopback, 0)
            $listener.Start()
            $endpoint = "http://127.0.0.1:$($listener.LocalEndpoint.Port)"
            $shell = [powershell]::Create()
            try {
                $null = $shell.AddScript({
                        param($Manifest, $Serial, $Endpoint)
                        Import-Module $Manifest
                        Get-EcrMfaSession -SerialNumber $Serial -TokenCode '123456' -EndpointUrl $Endpoint
                    }).AddArgument($manifestPath).AddArgument($standIns.serialNumber).AddArgument($endpoint)
                $invocation = $shell.BeginInvoke()
                $deadline = [datetime]::UtcNow.AddSeconds(20)
                while (-not $listener.Pending() -and [datetime]::UtcNow -lt $deadline) { Start-Sleep -Milliseconds 100 }
                $listener.Pending() | Should -BeTrue -Because 'the library should have connected before the stop'

                $watch = [System.Diagnostics.Stopwatch]::StartNew()
                $shell.Stop()
                $watch.Elapsed.TotalSeconds | Should -BeLessThan 5
                $shell.InvocationStateInfo.State | Should -Be 'Stopped'
                $invocation.IsCompleted | Should -BeTrue
            }
            finally {
                $shell.Dispose()
                $listener.Stop()
            }
        }
    }
}
