# Tests that no secret reaches any output of any command: every exported command runs, with
# good and bad input, in a child pwsh with -Verbose -Debug, $InformationPreference = 'Continue'
# and the library's trace log level. The child captures every stream with *>&1, keeps a
# transcript, and its standard output and error are kept too; none of them may hold the
# long-term secret access key, a session's secret access key or token, or the ECR password.

BeforeAll {
    Import-Module (Join-Path $PSScriptRoot 'StandIns.psm1') -Force
    # The scenarios run in a child pwsh, which imports the module itself.
    $context = New-StandInTestContext -Name secrets -Services sts, registry, engine -BuildExample -SkipImport
    $manifestPath = $context.ManifestPath
    $state = $context.State
    $standIns = $context.StandIns
    $registryHost = $context.RegistryHost

    $missingCompose = Join-Path $state 'missing-image/compose.yaml'
    $null = New-Item -ItemType Directory -Path (Split-Path $missingCompose) -Force
    Set-Content -Path $missingCompose -Encoding utf8 -Value @"
services:
  web:
    image: $registryHost/hello/web:1.0
  missing:
    image: $registryHost/hello/missing:1.0
"@

    $files = @{
        Capture = Join-Path $state 'streams.txt'
        Transcript = Join-Path $state 'transcript.txt'
        StandardOutput = Join-Path $state 'stdout.txt'
        StandardError = Join-Path $state 'stderr.txt'
        Sessions = Join-Path $state 'sessions.json'
        Outcomes = Join-Path $state 'outcomes.json'
    }
    $configuration = @{
        Manifest = $manifestPath
        SerialNumber = $standIns.serialNumber
        WrongTokenCode = $standIns.wrongTokenCode
        RegistryHost = $registryHost
        EcrHost = $context.EcrHost
        ComposeFile = $context.ComposeFile
        MissingCompose = $missingCompose
        DockerConfig = Join-Path $state 'docker-config'
        Control = $standIns.control
        Files = $files
    }
    $configurationFile = Join-Path $state 'configuration.json'
    $configuration | ConvertTo-Json -Depth 4 | Set-Content -Path $configurationFile -Encoding utf8

    $childScript = Join-Path $state 'scenarios.ps1'
    Set-Content -Path $childScript -Encoding utf8 -Value @'
param([string] $ConfigurationFile)
$configuration = Get-Content -Path $ConfigurationFile -Raw | ConvertFrom-Json
$files = $configuration.Files
$global:InformationPreference = 'Continue'
$InformationPreference = 'Continue'
$env:ECR_COMPOSE_LOG_LEVEL = 'trace'
Import-Module $configuration.Manifest
$null = Start-Transcript -Path $files.Transcript

$capture = [System.Collections.Generic.List[string]]::new()
$sessions = [System.Collections.Generic.List[object]]::new()
$outcomes = [ordered] @{}

# Runs Body with every stream captured, shows the records on the host for the transcript, and
# keeps every text a user could see of them.
function Invoke-Scenario {
    param([string] $Name, [scriptblock] $Body)

    Write-Host "=== $Name"
    $records = @(& { try { & $Body } catch { $_ } } *>&1)
    foreach ($record in $records) {
        if ($record -is [EcrCompose.MfaSession]) {
            $sessions.Add(@{ SecretAccessKey = $record.SecretAccessKey; SessionToken = $record.SessionToken })
        }

        $capture.Add(($record | Out-String -Width 4096))
        $capture.Add("$record")
        if ($record -is [System.Management.Automation.ErrorRecord]) {
            $capture.Add($record.Exception.ToString())
            $capture.Add(($record | Format-List * -Force | Out-String -Width 4096))
            $capture.Add(($record.Exception | Format-List * -Force | Out-String -Width 4096))
            $capture.Add(($record.CategoryInfo | Out-String -Width 4096))
        }
        elseif ($record -is [System.Management.Automation.InformationRecord]) {
            $capture.Add("$($record.MessageData)")
        }
    }

    $records | Out-Host
    $outcomes[$Name] = @{
        Types = @($records | ForEach-Object { $_.PSObject.TypeNames[0] } | Sort-Object -Unique)
        ErrorIds = @($records | Where-Object { $_ -is [System.Management.Automation.ErrorRecord] } | ForEach-Object FullyQualifiedErrorId)
        Statuses = @($records | Where-Object { $_.PSObject.TypeNames -contains 'EcrCompose.PushResult' } | ForEach-Object Status)
        TraceLines = @($records | Where-Object { $_ -is [System.Management.Automation.DebugRecord] -and $_.Message -match '^aws_smithy_runtime' }).Count
    }
    return $records
}

$session = Invoke-Scenario 'token' {
    Get-EcrMfaSession -SerialNumber $configuration.SerialNumber -TokenCode '123456' -Verbose -Debug
} | Where-Object { $_ -is [EcrCompose.MfaSession] } | Select-Object -First 1
$null = Invoke-Scenario 'token with a wrong code' {
    Get-EcrMfaSession -SerialNumber $configuration.SerialNumber -TokenCode $configuration.WrongTokenCode -Force -Verbose -Debug
}
$null = Invoke-Scenario 'token from the cache' {
    Get-EcrMfaSession -SerialNumber $configuration.SerialNumber -Verbose -Debug
}
$null = Invoke-Scenario 'token without a code' {
    Get-EcrMfaSession -SerialNumber $configuration.SerialNumber -NoCache -Verbose -Debug
}
$null = Invoke-Scenario 'token with an invalid code' {
    Get-EcrMfaSession -SerialNumber $configuration.SerialNumber -TokenCode '12345' -Verbose -Debug
}
$null = Invoke-Scenario 'token with an invalid serial number' {
    Get-EcrMfaSession -SerialNumber 'arn:aws:iam::123456789012:user/dev' -TokenCode '123456' -NoCache -Verbose -Debug
}
$null = Invoke-Scenario 'token with an unknown profile' {
    Get-EcrMfaSession -SerialNumber $configuration.SerialNumber -TokenCode '123456' -ProfileName 'no-such-profile' -Verbose -Debug
}
$null = Invoke-Scenario 'token with -SetEnvironment' {
    Get-EcrMfaSession -SerialNumber $configuration.SerialNumber -TokenCode '123456' -Force -SetEnvironment -Verbose -Debug
}

# Makes the STS gate deny the next GetAuthorizationToken call, as ECR denies a user without the
# ecr:GetAuthorizationToken permission.
function Set-DeniedAuthorization {
    $fault = @{
        action = 'GetAuthorizationToken'; status = 400; code = 'AccessDeniedException'; count = 1
        message = 'User is not authorized to perform: ecr:GetAuthorizationToken'
    }
    $null = Invoke-RestMethod -Method Post -Uri "$($configuration.Control)/faults" -NoProxy `
        -Body ($fault | ConvertTo-Json -Compress) -ContentType 'application/json'
}

$aliases = @{ $configuration.RegistryHost = $configuration.EcrHost }
$expired = [EcrCompose.MfaSession] @{
    AccessKeyId = $session.AccessKeyId; SecretAccessKey = $session.SecretAccessKey; SessionToken = $session.SessionToken
    Expiration = [datetime]::UtcNow.AddMinutes(-1); SerialNumber = $session.SerialNumber; AccountId = $session.AccountId
}
$tampered = [EcrCompose.MfaSession] @{
    AccessKeyId = $session.AccessKeyId; SecretAccessKey = 'TAMPERED' + $session.SecretAccessKey.Substring(8)
    SessionToken = 'TAMPERED' + $session.SessionToken.Substring(8); Expiration = $session.Expiration
    SerialNumber = $session.SerialNumber; AccountId = $session.AccountId; Region = $session.Region
}
$sessions.Add(@{ SecretAccessKey = $tampered.SecretAccessKey; SessionToken = $tampered.SessionToken })

$null = Invoke-Scenario 'login' {
    $session | Connect-EcrRegistry -Registry $configuration.RegistryHost -RegistryAlias $aliases `
        -DockerConfigPath $configuration.DockerConfig -PassThru -Verbose -Debug
}
$null = Invoke-Scenario 'login to a registry that is not ECR' {
    $session | Connect-EcrRegistry -Registry 'docker.io' -DockerConfigPath $configuration.DockerConfig -Verbose -Debug
}
$null = Invoke-Scenario 'login with an expired session' {
    $expired | Connect-EcrRegistry -Registry $configuration.RegistryHost -RegistryAlias $aliases `
        -DockerConfigPath $configuration.DockerConfig -Verbose -Debug
}
Set-DeniedAuthorization
$null = Invoke-Scenario 'login with denied access' {
    $tampered | Connect-EcrRegistry -Registry $configuration.RegistryHost -RegistryAlias $aliases `
        -DockerConfigPath $configuration.DockerConfig -Verbose -Debug
}
$null = Invoke-Scenario 'push' {
    $session | Push-ComposeToEcr -Path $configuration.ComposeFile -RegistryAlias $aliases -CreateRepository -Verbose -Debug
}
$null = Invoke-Scenario 'push with a missing image' {
    $session | Push-ComposeToEcr -Path $configuration.MissingCompose -RegistryAlias $aliases -CreateRepository -Verbose -Debug
}
$null = Invoke-Scenario 'push with -WhatIf' {
    $session | Push-ComposeToEcr -Path $configuration.ComposeFile -RegistryAlias $aliases -WhatIf -Verbose -Debug
}
$null = Invoke-Scenario 'push with the exported session' {
    Push-ComposeToEcr -Path $configuration.ComposeFile -RegistryAlias $aliases -Service web -Verbose -Debug
}
Set-DeniedAuthorization
$null = Invoke-Scenario 'push with denied access' {
    $tampered | Push-ComposeToEcr -Path $configuration.ComposeFile -RegistryAlias $aliases -Verbose -Debug
}
$null = Invoke-Scenario 'push with an invalid -Via' {
    $session | Push-ComposeToEcr -Path $configuration.ComposeFile -Via 'Bogus' -Verbose -Debug
}
$null = Invoke-Scenario 'push with a missing compose file' {
    $session | Push-ComposeToEcr -Path (Join-Path $configuration.DockerConfig 'missing.yaml') -Verbose -Debug
}
$null = Invoke-Scenario 'push with an invalid source' {
    $session | Push-ComposeToEcr -Path $configuration.ComposeFile -RegistryAlias $aliases -Source @{ web = 'tarball:web.tar' } -Verbose -Debug
}
$null = Invoke-Scenario 'cache clear' {
    Clear-EcrMfaSession -PassThru -Verbose -Debug
}
$null = Invoke-Scenario 'token from an empty cache' {
    Get-EcrMfaSession -SerialNumber $configuration.SerialNumber -CachedOnly -Verbose -Debug
}

# Every error of the session, including those of parameter binding, as PowerShell keeps them.
$capture.Add(($Error | Format-List * -Force | Out-String -Width 4096))
$Error | Out-Host
$null = Stop-Transcript

Set-Content -Path $files.Capture -Value ($capture -join "`n") -Encoding utf8
Set-Content -Path $files.Sessions -Value (ConvertTo-Json -InputObject @($sessions) -Compress) -Encoding utf8
Set-Content -Path $files.Outcomes -Value (ConvertTo-Json -InputObject $outcomes -Depth 4) -Encoding utf8
'@

    $pwsh = @(Get-PwshCommand)

    $arguments = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-File', $childScript, $configurationFile)
    $child = Start-Process -FilePath $pwsh[0] -ArgumentList $arguments -NoNewWindow -PassThru `
        -RedirectStandardOutput $files.StandardOutput -RedirectStandardError $files.StandardError
    if (-not $child.WaitForExit(240000)) {
        $child.Kill()
        throw "The scenarios did not end within 240 s; see $($files.StandardOutput)."
    }

    $outcomes = Get-Content -Path $files.Outcomes -Raw | ConvertFrom-Json
    $sessionSecrets = @(Get-Content -Path $files.Sessions -Raw | ConvertFrom-Json)
    $secrets = New-SecretTable -StandIns $standIns
    $index = 0
    foreach ($sessionSecret in $sessionSecrets) {
        $index++
        $secrets["the secret access key of session $index"] = $sessionSecret.SecretAccessKey
        $secrets["the session token of session $index"] = $sessionSecret.SessionToken
    }

    $texts = @{}
    foreach ($name in 'Capture', 'Transcript', 'StandardOutput', 'StandardError') {
        $texts[$name] = if (Test-Path $files[$name]) { Get-Content -Path $files[$name] -Raw } else { '' }
        if ($null -eq $texts[$name]) { $texts[$name] = '' }
    }

    # Returns how a secret occurs in Text: whole, or a 20-character piece from its middle, as a
    # shortened log value would show it. The value itself is never printed.
    function Find-Secret {
        param([string] $Text, [string] $Secret)

        if ($Text.Contains($Secret)) { return 'whole' }
        if ($Secret.Length -ge 32 -and $Text.Contains($Secret.Substring(8, 20))) { return 'in part' }
        return $null
    }
}

AfterAll {
    Remove-StandInTestContext -Context $context
}

Describe 'Secrets in every output' {
    Context 'scenarios' {
        It 'end with exit code 0' {
            $child.ExitCode | Should -Be 0 -Because (Get-Content -Path $files.StandardError -Raw)
        }

        It 'record four sessions' {
            # token, token from the cache, token with -SetEnvironment and the tampered copy.
            $sessionSecrets.Count | Should -Be 4
        }

        It '<Scenario> ends with <Expected>' -ForEach @(
            @{ Scenario = 'token'; Expected = 'a session' }
            @{ Scenario = 'token with a wrong code'; Expected = 'MfaCodeRejected,Get-EcrMfaSession' }
            @{ Scenario = 'token from the cache'; Expected = 'a session' }
            @{ Scenario = 'token without a code'; Expected = 'MissingTokenCode,Get-EcrMfaSession' }
            @{ Scenario = 'token with an invalid code'; Expected = 'ParameterArgumentValidationError,Get-EcrMfaSession' }
            @{ Scenario = 'token with an invalid serial number'; Expected = 'InvalidSerialNumber,Get-EcrMfaSession' }
            @{ Scenario = 'token with an unknown profile'; Expected = 'ProfileNotFound,Get-EcrMfaSession' }
            @{ Scenario = 'token with -SetEnvironment'; Expected = 'a session' }
            @{ Scenario = 'login'; Expected = 'a login' }
            @{ Scenario = 'login to a registry that is not ECR'; Expected = 'NotAnEcrRegistry,Connect-EcrRegistry' }
            @{ Scenario = 'login with an expired session'; Expected = 'SessionExpired,Connect-EcrRegistry' }
            @{ Scenario = 'login with denied access'; Expected = 'AccessDenied,Connect-EcrRegistry' }
            @{ Scenario = 'push'; Expected = 'pushed images' }
            @{ Scenario = 'push with a missing image'; Expected = 'a failed image' }
            @{ Scenario = 'push with -WhatIf'; Expected = 'no result' }
            @{ Scenario = 'push with the exported session'; Expected = 'pushed images' }
            @{ Scenario = 'push with denied access'; Expected = 'an error' }
            @{ Scenario = 'push with an invalid -Via'; Expected = 'ParameterArgumentValidationError,Push-ComposeToEcr' }
            @{ Scenario = 'push with a missing compose file'; Expected = 'an error' }
            @{ Scenario = 'push with an invalid source'; Expected = 'an error' }
            @{ Scenario = 'cache clear'; Expected = 'a clear result' }
            @{ Scenario = 'token from an empty cache'; Expected = 'NoCachedSession,Get-EcrMfaSession' }
        ) {
            $outcome = $outcomes.$Scenario
            switch ($Expected) {
                'a session' { $outcome.Types | Should -Contain 'EcrCompose.MfaSession' }
                'a login' { $outcome.Types | Should -Contain 'EcrCompose.LoginResult' }
                'pushed images' { $outcome.Statuses | Should -Contain 'Pushed' }
                'a failed image' { $outcome.Statuses | Should -Contain 'Failed' }
                'no result' { $outcome.Statuses | Should -BeNullOrEmpty }
                'an error' { $outcome.ErrorIds | Should -Not -BeNullOrEmpty }
                'a clear result' { $outcome.Types | Should -Contain 'EcrCompose.SessionCacheClearResult' }
                default { $outcome.ErrorIds | Should -Contain $Expected }
            }
        }

        It 'log at the trace level' {
            $outcomes.push.TraceLines | Should -BeGreaterThan 0
        }

        It 'write the push summary to the transcript' {
            $texts.Transcript | Should -Match 'Pushed 2 images, skipped 2, failed 0'
        }

        It 'write the plan to the transcript' {
            $texts.Transcript | Should -Match 'What if: Push '
        }
    }

    Context '<Output>' -ForEach @(
        @{ Output = 'Capture' }
        @{ Output = 'Transcript' }
        @{ Output = 'StandardOutput' }
        @{ Output = 'StandardError' }
    ) {
        It 'holds no secret' {
            $found = foreach ($name in $secrets.Keys) {
                $how = Find-Secret -Text $texts[$Output] -Secret $secrets[$name]
                if ($how) { "$name ($how)" }
            }
            $found | Should -BeNullOrEmpty
        }
    }

    It 'checks outputs that are not empty' {
        $texts.Capture.Length | Should -BeGreaterThan 10000
        $texts.Transcript.Length | Should -BeGreaterThan 10000
    }

    It 'finds a secret that is written' {
        # Proves that the check finds what it looks for.
        Find-Secret -Text "x$($secrets['the ECR password'])x" -Secret $secrets['the ECR password'] | Should -Be 'whole'
    }
}
