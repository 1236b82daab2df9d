# Tests of the tab completion of -ProfileName, -Region and -Service, through TabExpansion2 as the
# console calls it. The AWS files and compose files are temporary files of each test.

BeforeAll {
    $repositoryRoot = Split-Path -Parent $PSScriptRoot
    $manifestPath = if ($env:ECR_COMPOSE_MODULE) { $env:ECR_COMPOSE_MODULE } else { Join-Path $repositoryRoot 'module/EcrCompose.psd1' }
    Import-Module $manifestPath -Force

    $folder = Join-Path ([System.IO.Path]::GetTempPath()) "ecr-compose-completion-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    $null = New-Item -ItemType Directory -Path $folder
    $savedVariables = @{}
    foreach ($name in 'AWS_CONFIG_FILE', 'AWS_SHARED_CREDENTIALS_FILE', 'COMPOSE_FILE', 'HOME') {
        $savedVariables[$name] = [Environment]::GetEnvironmentVariable($name)
    }

    $configFile = Join-Path $folder 'config'
    Set-Content -Path $configFile -Encoding utf8 -Value @(
        '[default]'
        'region = eu-west-1'
        ''
        '[profile dev]'
        'mfa_serial = arn:aws:iam::123456789012:mfa/dev'
        '[profile prod eu]'
        '  [ profile indented ]  '
        '[sso-session corp]'
        'sso_start_url = https://corp.awsapps.com/start'
        '[services local]'
        'ecr ='
        '  endpoint_url = http://127.0.0.1:4566'
    )
    $credentialsFile = Join-Path $folder 'credentials'
    Set-Content -Path $credentialsFile -Encoding utf8 -Value @(
        '[ci]'
        'aws_access_key_id = AKIAEXAMPLE'
        '[dev]'
    )
    $env:AWS_CONFIG_FILE = $configFile
    $env:AWS_SHARED_CREDENTIALS_FILE = $credentialsFile
    $env:COMPOSE_FILE = $null

    # Returns the completion texts for the end of Line.
    function Get-Completion {
        param([string] $Line)

        $result = TabExpansion2 -inputScript $Line -cursorColumn $Line.Length
        return @($result.CompletionMatches | ForEach-Object CompletionText)
    }

    function New-ComposeFolder {
        param([string] $Name, [hashtable] $Files)

        $project = Join-Path $folder $Name
        $null = New-Item -ItemType Directory -Path $project -Force
        foreach ($file in $Files.Keys) {
            Set-Content -Path (Join-Path $project $file) -Value $Files[$file] -Encoding utf8
        }
        return $project
    }

    $composeText = @'
# Services of a test project.
name: sample
services:
  web:
    image: 127.0.0.1:5000/hello/web:1.0
    environment:
      - PORT=80
    labels:
      nested: value
  "quoted-api":
    image: 127.0.0.1:5000/hello/api:1.0
  # a comment at the service level
  worker: &worker
    build: ./worker
  db:
    image: postgres:16
volumes:
  data:
x-notes:
  other: value
'@
    $project = New-ComposeFolder -Name 'project' -Files @{ 'compose.yaml' = $composeText }
    $composeFile = Join-Path $project 'compose.yaml'
}

AfterAll {
    foreach ($name in $savedVariables.Keys) {
        [Environment]::SetEnvironmentVariable($name, $savedVariables[$name])
    }

    Remove-Item -Path $folder -Recurse -Force -ErrorAction SilentlyContinue
    Remove-Module EcrCompose -Force -ErrorAction SilentlyContinue
}

Describe 'Tab completion' {
    Context '-ProfileName' {
        It 'offers the profiles of both files on <_>' -ForEach 'Get-EcrMfaSession', 'Connect-EcrRegistry', 'Push-ComposeToEcr', 'Clear-EcrMfaSession' {
            Get-Completion "$_ -ProfileName " | Should -Be @('ci', 'default', 'dev', 'indented', "'prod eu'")
        }

        It 'filters by the typed prefix' {
            Get-Completion 'Get-EcrMfaSession -ProfileName de' | Should -Be @('default', 'dev')
        }

        It 'ignores case in the prefix' {
            Get-Completion 'Get-EcrMfaSession -ProfileName DE' | Should -Be @('default', 'dev')
        }

        It 'matches a quoted prefix' {
            Get-Completion "Get-EcrMfaSession -ProfileName 'prod" | Should -Be @("'prod eu'")
        }

        It 'leaves out sso-session and services sections' {
            Get-Completion 'Get-EcrMfaSession -ProfileName ' | Should -Not -Contain 'corp'
        }

        It 'reads ~/.aws when the variables are unset' {
            $homeFolder = Join-Path $folder 'home'
            $null = New-Item -ItemType Directory -Path (Join-Path $homeFolder '.aws') -Force
            Set-Content -Path (Join-Path $homeFolder '.aws/config') -Value '[profile from-home]' -Encoding utf8
            Set-Content -Path (Join-Path $homeFolder '.aws/credentials') -Value '[home-keys]' -Encoding utf8
            $env:AWS_CONFIG_FILE = $null
            $env:AWS_SHARED_CREDENTIALS_FILE = $null
            $env:HOME = $homeFolder
            try {
                $completions = Get-Completion 'Get-EcrMfaSession -ProfileName '
            }
            finally {
                $env:HOME = $savedVariables['HOME']
                $env:AWS_CONFIG_FILE = $configFile
                $env:AWS_SHARED_CREDENTIALS_FILE = $credentialsFile
            }

            $completions | Should -Be @('from-home', 'home-keys')
        }

        It 'offers no profile when the files are missing' {
            $env:AWS_CONFIG_FILE = Join-Path $folder 'no-such-config'
            $env:AWS_SHARED_CREDENTIALS_FILE = Join-Path $folder 'no-such-credentials'
            try {
                $completions = Get-Completion 'Get-EcrMfaSession -ProfileName '
            }
            finally {
                $env:AWS_CONFIG_FILE = $configFile
                $env:AWS_SHARED_CREDENTIALS_FILE = $credentialsFile
            }

            # Without a result of the completer, PowerShell completes file names instead.
            $completions | Where-Object { $_ -notmatch '^\./' } | Should -BeNullOrEmpty
        }
    }

    Context '-Region' {
        It 'offers the European regions for eu-' {
            Get-Completion 'Get-EcrMfaSession -Region eu-' | Should -Be @(
                'eu-central-1', 'eu-central-2', 'eu-north-1', 'eu-south-1', 'eu-south-2', 'eu-west-1', 'eu-west-2', 'eu-west-3')
        }

        It 'offers the China regions' {
            Get-Completion 'Push-ComposeToEcr -Region cn-' | Should -Be @('cn-north-1', 'cn-northwest-1')
        }

        It 'offers the GovCloud regions' {
            Get-Completion 'Connect-EcrRegistry -Region us-gov' | Should -Be @('us-gov-east-1', 'us-gov-west-1')
        }

        It 'offers every region without a prefix' {
            (Get-Completion 'Get-EcrMfaSession -Region ').Count | Should -Be 38
        }

        It 'names the region in the tool tip' {
            $result = TabExpansion2 -inputScript 'Get-EcrMfaSession -Region eu-west-1' -cursorColumn 35
            $result.CompletionMatches[0].ToolTip | Should -Be 'Europe (Ireland)'
        }

        It 'is not offered by Clear-EcrMfaSession' {
            (Get-Command Clear-EcrMfaSession).Parameters.Keys | Should -Not -Contain 'Region'
        }
    }

    Context '-Service' {
        It 'offers the services of -Path' {
            Get-Completion "Push-ComposeToEcr -Path '$composeFile' -Service " | Should -Be @('db', 'quoted-api', 'web', 'worker')
        }

        It 'filters by the typed prefix' {
            Get-Completion "Push-ComposeToEcr -Path '$composeFile' -Service w" | Should -Be @('web', 'worker')
        }

        It 'leaves out services given before a comma' {
            Get-Completion "Push-ComposeToEcr -Path '$composeFile' -Service web, " | Should -Be @('db', 'quoted-api', 'worker')
        }

        It 'leaves out services given before a prefix' {
            Get-Completion "Push-ComposeToEcr -Path '$composeFile' -Service web,w" | Should -Be @('worker')
        }

        It 'offers the service being completed' {
            Get-Completion "Push-ComposeToEcr -Path '$composeFile' -Service worker" | Should -Be @('worker')
        }

        It 'resolves a relative -Path against the location' {
            Push-Location $folder
            try {
                $completions = Get-Completion 'Push-ComposeToEcr -Path project/compose.yaml -Service '
            }
            finally {
                Pop-Location
            }

            $completions | Should -Be @('db', 'quoted-api', 'web', 'worker')
        }

        It 'merges the services of several files' {
            $extra = New-ComposeFolder -Name 'extra' -Files @{ 'extra.yaml' = "services:`n    cron:`n        image: busybox`n" }
            $completions = Get-Completion "Push-ComposeToEcr -Path '$composeFile', '$(Join-Path $extra 'extra.yaml')' -Service "
            $completions | Should -Be @('cron', 'db', 'quoted-api', 'web', 'worker')
        }

        It 'reads compose.yaml in the location without -Path' {
            Push-Location $project
            try {
                $completions = Get-Completion 'Push-ComposeToEcr -Service '
            }
            finally {
                Pop-Location
            }

            $completions | Should -Be @('db', 'quoted-api', 'web', 'worker')
        }

        It 'reads a parent default and override' {
            $parent = New-ComposeFolder -Name 'with-override' -Files @{
                'docker-compose.yml' = "services:`n  app:`n    image: app`n"
                'docker-compose.override.yml' = "services:`n  debug:`n    image: debug`n"
            }
            $child = Join-Path $parent 'src/deep'
            $null = New-Item -ItemType Directory -Path $child -Force
            Push-Location $child
            try {
                $completions = Get-Completion 'Push-ComposeToEcr -Service '
            }
            finally {
                Pop-Location
            }

            $completions | Should -Be @('app', 'debug')
        }

        It 'reads COMPOSE_FILE without -Path' {
            $env:COMPOSE_FILE = $composeFile
            Push-Location $folder
            try {
                $completions = Get-Completion 'Push-ComposeToEcr -Service '
            }
            finally {
                Pop-Location
                $env:COMPOSE_FILE = $null
            }

            $completions | Should -Be @('db', 'quoted-api', 'web', 'worker')
        }

        It 'offers the services of the example project' {
            $example = Join-Path $repositoryRoot 'examples/hello-compose/compose.yaml'
            Get-Completion "Push-ComposeToEcr -Path '$example' -Service " | Should -Be @('api', 'cache', 'tools', 'web')
        }

        It 'offers no service for a missing file' {
            $completions = Get-Completion "Push-ComposeToEcr -Path '$(Join-Path $folder 'missing.yaml')' -Service "
            $completions | Where-Object { $_ -notmatch '^\./' } | Should -BeNullOrEmpty
        }
    }
}
