# Tests of the EcrCompose module as a whole: manifest, files, help and import.
# The module under test is $env:ECR_COMPOSE_MODULE (the built layout), or module/ in the source tree.

BeforeDiscovery {
    $repositoryRoot = Split-Path -Parent $PSScriptRoot
    $publicNames = @(Get-ChildItem -Path (Join-Path $repositoryRoot 'module/Public') -Filter '*.ps1' |
            ForEach-Object BaseName | Sort-Object)
    $scriptFiles = @(Get-ChildItem -Path (Join-Path $repositoryRoot 'module') -Filter '*.ps1' -Recurse |
            ForEach-Object { @{ Name = $_.Name; Path = $_.FullName } })
}

BeforeAll {
    $repositoryRoot = Split-Path -Parent $PSScriptRoot
    $manifestPath = if ($env:ECR_COMPOSE_MODULE) { $env:ECR_COMPOSE_MODULE } else { Join-Path $repositoryRoot 'module/EcrCompose.psd1' }
    $moduleRoot = Split-Path -Parent $manifestPath
    $publicNames = @(Get-ChildItem -Path (Join-Path $moduleRoot 'Public') -Filter '*.ps1' | ForEach-Object BaseName | Sort-Object)
    Import-Module $manifestPath -Force
}

AfterAll {
    Remove-Module EcrCompose -Force -ErrorAction SilentlyContinue
}

Describe 'Module manifest' {
    BeforeAll {
        $manifest = Test-ModuleManifest -Path $manifestPath -ErrorAction Stop
        $data = Import-PowerShellDataFile -Path $manifestPath
    }

    It 'passes Test-ModuleManifest' {
        $manifest.Name | Should -Be 'EcrCompose'
    }

    It 'supports Core and Desktop editions' {
        $data.CompatiblePSEditions | Should -Be @('Core', 'Desktop')
    }

    It 'requires PowerShell 5.1' {
        $data.PowerShellVersion | Should -Be '5.1'
    }

    It 'lists the public functions explicitly' {
        @($data.FunctionsToExport | Sort-Object) | Should -Be $publicNames
    }

    It 'exports no cmdlets, variables or aliases' {
        @($data.CmdletsToExport).Count + @($data.VariablesToExport).Count + @($data.AliasesToExport).Count | Should -Be 0
    }

    It 'names an existing format file' {
        $data.FormatsToProcess | Should -Be @('EcrCompose.Format.ps1xml')
        Join-Path $moduleRoot $data.FormatsToProcess[0] | Should -Exist
    }

    It 'lists every module file in FileList' {
        $files = Get-ChildItem -Path $moduleRoot -File -Recurse |
            Where-Object { $_.FullName -notmatch '[\\/]runtimes[\\/]' } |
            ForEach-Object { $_.FullName.Substring($moduleRoot.Length + 1).Replace('\', '/') } |
            Sort-Object
        @($data.FileList | ForEach-Object { $_.Replace('\', '/') } | Sort-Object) | Should -Be @($files)
    }

    It 'has gallery tags' {
        $data.PrivateData.PSData.Tags | Should -Contain 'ECR'
    }

    It 'has a license URI' {
        $data.PrivateData.PSData.LicenseUri | Should -Match '^https://'
    }
}

Describe 'Module files' {
    It '<Name> parses without errors' -ForEach $scriptFiles {
        $tokens = $null
        $errors = $null
        $null = [System.Management.Automation.Language.Parser]::ParseFile($Path, [ref] $tokens, [ref] $errors)
        $errors | Should -BeNullOrEmpty
    }

    It '<Name> defines one function named after the file' -ForEach ($scriptFiles | Where-Object { $_.Path -match '[\\/](Public|Private)[\\/]' }) {
        $tokens = $null
        $errors = $null
        $ast = [System.Management.Automation.Language.Parser]::ParseFile($Path, [ref] $tokens, [ref] $errors)
        $functions = @($ast.FindAll({ $args[0] -is [System.Management.Automation.Language.FunctionDefinitionAst] }, $false))
        $functions.Count | Should -Be 1
        $functions[0].Name | Should -Be ([System.IO.Path]::GetFileNameWithoutExtension($Path))
    }

    It 'format file is valid XML with a view per output type' {
        [xml] $format = Get-Content -Path (Join-Path $moduleRoot 'EcrCompose.Format.ps1xml') -Raw
        $types = @($format.Configuration.ViewDefinitions.View | ForEach-Object { $_.ViewSelectedBy.TypeName } | Sort-Object -Unique)
        $types | Should -Be @(
            'EcrCompose.LoginResult', 'EcrCompose.MfaSession', 'EcrCompose.PushResult', 'EcrCompose.PushSummary',
            'EcrCompose.SessionCacheClearResult')
    }
}

Describe 'Exported commands' {
    It 'are exactly the public functions' {
        @(Get-Command -Module EcrCompose | ForEach-Object Name | Sort-Object) | Should -Be $publicNames
    }

    Context '<_>' -ForEach $publicNames {
        BeforeAll {
            $command = Get-Command -Name $_ -Module EcrCompose
            $help = Get-Help -Name $_ -Full
            $commonParameters = [System.Management.Automation.PSCmdlet]::CommonParameters +
                [System.Management.Automation.PSCmdlet]::OptionalCommonParameters
        }

        It 'is an advanced function' {
            $command.CmdletBinding | Should -BeTrue
        }

        It 'has a synopsis' {
            # Without comment-based help, Get-Help makes the synopsis from the syntax.
            $help.Synopsis | Should -Not -Match "^\s*$($command.Name)\s"
            $help.Synopsis | Should -Not -BeNullOrEmpty
        }

        It 'has a description' {
            ($help.Description.Text -join '') | Should -Not -BeNullOrEmpty
        }

        It 'has an example' {
            @($help.Examples.Example).Count | Should -BeGreaterThan 0
        }

        It 'explains every example' {
            $unexplained = @($help.Examples.Example | Where-Object { -not ($_.Remarks.Text -join '').Trim() })
            $unexplained.Count | Should -Be 0
        }

        It 'has an example for a CI job' {
            $ciExamples = @($help.Examples.Example | Where-Object { ($_.Remarks.Text -join ' ') -match '\bCI\b' })
            $ciExamples.Count | Should -BeGreaterThan 0
        }

        It 'names its inputs and outputs' {
            ($help.inputTypes.inputType.type.name -join '') | Should -Not -BeNullOrEmpty
            ($help.returnValues.returnValue.type.name -join '') | Should -Not -BeNullOrEmpty
        }

        It 'describes every parameter' {
            $undocumented = foreach ($name in $command.Parameters.Keys) {
                if ($name -in $commonParameters) { continue }
                $parameterHelp = $help.Parameters.Parameter | Where-Object Name -EQ $name
                if (-not ($parameterHelp.Description.Text -join '')) { $name }
            }

            $undocumented | Should -BeNullOrEmpty
        }

        It 'declares an output type' {
            $command.OutputType | Should -Not -BeNullOrEmpty
        }
    }

    It '<_> supports ShouldProcess' -ForEach 'Clear-EcrMfaSession', 'Connect-EcrRegistry', 'Push-ComposeToEcr' {
        (Get-Command -Name $_).Parameters.Keys | Should -Contain 'WhatIf'
    }
}

Describe 'about_EcrCompose' {
    BeforeAll {
        $about = Get-Help -Name about_EcrCompose | Out-String -Width 200
    }

    It 'is found by Get-Help' {
        $about | Should -Match 'SHORT DESCRIPTION'
    }

    It 'names <_>' -ForEach $publicNames {
        $about | Should -Match ([regex]::Escape($_))
    }

    It 'documents <_>' -ForEach 'ECR_COMPOSE_LOG_LEVEL', 'ECR_COMPOSE_CACHE_DIR', 'ECR_COMPOSE_LIBRARY', '-PassThru', 'PushSummary', '-TokenCode' {
        $about | Should -Match ([regex]::Escape($_))
    }
}

Describe 'Import-Module' {
    It 'imports twice with -Force' {
        { Import-Module $manifestPath -Force -ErrorAction Stop } | Should -Not -Throw
        { Import-Module $manifestPath -Force -ErrorAction Stop } | Should -Not -Throw
    }

    It 'keeps working after a second import' {
        Import-Module $manifestPath -Force
        $session = [EcrCompose.MfaSession] @{ AccountId = '123456789012'; SerialNumber = 'arn:aws:iam::123456789012:mfa/dev' }
        "$session" | Should -BeLike 'MFA session of account 123456789012*'
    }

    It 'keeps private functions private' {
        Get-Command -Name Invoke-EcrOperation -ErrorAction SilentlyContinue | Should -BeNullOrEmpty
    }
}

Describe 'Error records of library errors' {
    It 'maps status <Status> to category <Category>' -ForEach @(
        @{ Status = 'InvalidRequest'; Category = 'InvalidArgument' }
        @{ Status = 'InvalidArgument'; Category = 'InvalidArgument' }
        @{ Status = 'Authentication'; Category = 'AuthenticationError' }
        @{ Status = 'NotFound'; Category = 'ObjectNotFound' }
        @{ Status = 'Denied'; Category = 'PermissionDenied' }
        @{ Status = 'Throttled'; Category = 'LimitsExceeded' }
        @{ Status = 'Network'; Category = 'ConnectionError' }
        @{ Status = 'Timeout'; Category = 'OperationTimeout' }
        @{ Status = 'Cancelled'; Category = 'OperationStopped' }
        @{ Status = 'Registry'; Category = 'InvalidResult' }
        @{ Status = 'AbiVersion'; Category = 'InvalidOperation' }
        @{ Status = 'Internal'; Category = 'NotSpecified' }
        @{ Status = 'Panic'; Category = 'NotSpecified' }
    ) {
        $document = [pscustomobject] @{ status = $Status; errorId = 'SomeError'; message = 'Something failed.' }
        $record = InModuleScope EcrCompose -Parameters @{ Document = $document } {
            param($Document)
            New-EcrErrorRecord -ErrorDocument $Document
        }
        $record.CategoryInfo.Category | Should -Be $Category
    }

    It 'uses errorId as the ErrorId' {
        $document = [pscustomobject] @{ status = 'Authentication'; errorId = 'MfaCodeRejected'; message = 'Rejected.' }
        $record = InModuleScope EcrCompose -Parameters @{ Document = $document } {
            param($Document)
            New-EcrErrorRecord -ErrorDocument $Document
        }
        $record.FullyQualifiedErrorId | Should -Be 'MfaCodeRejected'
    }

    It 'keeps target and service code' {
        $document = [pscustomobject] @{
            status = 'Denied'; errorId = 'AccessDenied'; message = 'Denied.'; serviceCode = 'AccessDeniedException'; target = 'hello/web'
        }
        $record = InModuleScope EcrCompose -Parameters @{ Document = $document } {
            param($Document)
            New-EcrErrorRecord -ErrorDocument $Document
        }
        $record.TargetObject | Should -Be 'hello/web'
        $record.Exception.ServiceCode | Should -Be 'AccessDeniedException'
    }

    It 'reports a missing document as internal' {
        $record = InModuleScope EcrCompose { New-EcrErrorRecord -ErrorDocument $null }
        $record.FullyQualifiedErrorId | Should -Be 'InternalError'
    }
}

Describe 'Redaction of library log lines' {
    It 'masks <Case>' -ForEach @(
        @{ Case = 'a JSON member'; Line = '{"authorizationToken": "QVdTOnNlY3JldC12YWx1ZQ=="}'; Secret = 'QVdTOnNlY3JldC12YWx1ZQ==' }
        @{ Case = 'an escaped JSON member'; Line = 'body: b"{\"authorizationToken\": \"QVdTOnNlY3JldC12YWx1ZQ==\"}"'; Secret = 'QVdTOnNlY3JldC12YWx1ZQ==' }
        @{ Case = 'a Rust Debug field'; Line = 'AuthorizationData { authorization_token: Some("QVdTOnNlY3JldC12YWx1ZQ==") }'; Secret = 'QVdTOnNlY3JldC12YWx1ZQ==' }
        @{ Case = 'an XML secret key'; Line = '<SecretAccessKey>wJalrXUtnFEMIK7MDENG</SecretAccessKey>'; Secret = 'wJalrXUtnFEMIK7MDENG' }
        @{ Case = 'an XML session token'; Line = '<SessionToken>FwoGZXIvYXdzEBYaDH</SessionToken>'; Secret = 'FwoGZXIvYXdzEBYaDH' }
        @{ Case = 'a docker config auth'; Line = '{"auths": {"r": {"auth": "QVdTOnNlY3JldC12YWx1ZQ=="}}}'; Secret = 'QVdTOnNlY3JldC12YWx1ZQ==' }
        @{ Case = 'Basic credentials'; Line = 'authorization: Basic QVdTOnNlY3JldC12YWx1ZQ=='; Secret = 'QVdTOnNlY3JldC12YWx1ZQ==' }
    ) {
        $masked = InModuleScope EcrCompose -Parameters @{ Line = $Line } { param($Line) ConvertTo-EcrRedactedText -Text $Line }
        $masked | Should -Not -Match ([regex]::Escape($Secret))
    }

    It 'keeps other fields' {
        $line = '{"authorizationToken": "QVdTOnNlY3JldA==", "expiresAt": 1796449884, "proxyEndpoint": "https://x"}'
        $masked = InModuleScope EcrCompose -Parameters @{ Line = $line } { param($Line) ConvertTo-EcrRedactedText -Text $Line }
        $masked | Should -Be '{"authorizationToken": "***", "expiresAt": 1796449884, "proxyEndpoint": "https://x"}'
    }
}

Describe 'Native library path' {
    It 'prefers ECR_COMPOSE_LIBRARY' {
        $path = InModuleScope EcrCompose {
            $previous = $env:ECR_COMPOSE_LIBRARY
            try {
                $env:ECR_COMPOSE_LIBRARY = [System.IO.Path]::Combine([System.IO.Path]::GetTempPath(), 'libexample.so')
                Get-EcrNativeLibraryPath
            }
            finally {
                $env:ECR_COMPOSE_LIBRARY = $previous
            }
        }
        $path | Should -Be ([System.IO.Path]::Combine([System.IO.Path]::GetTempPath(), 'libexample.so'))
    }

    It 'rejects a relative ECR_COMPOSE_LIBRARY' {
        {
            InModuleScope EcrCompose {
                $previous = $env:ECR_COMPOSE_LIBRARY
                try {
                    $env:ECR_COMPOSE_LIBRARY = 'libecr_compose.so'
                    Get-EcrNativeLibraryPath
                }
                finally {
                    $env:ECR_COMPOSE_LIBRARY = $previous
                }
            }
        } | Should -Throw '*must be an absolute path*'
    }

    It 'defaults to runtimes/<rid>/native in the module folder' {
        $path = InModuleScope EcrCompose {
            $previous = $env:ECR_COMPOSE_LIBRARY
            try {
                $env:ECR_COMPOSE_LIBRARY = $null
                Get-EcrNativeLibraryPath
            }
            finally {
                $env:ECR_COMPOSE_LIBRARY = $previous
            }
        }
        $rid = InModuleScope EcrCompose { Get-EcrRuntimeIdentifier }
        $path | Should -BeLike ([System.IO.Path]::Combine($moduleRoot, 'runtimes', $rid, 'native', '*ecr_compose*'))
    }

    It 'fails with NativeLibraryLoadFailed for a missing file' {
        $previous = $env:ECR_COMPOSE_LIBRARY
        $fresh = [powershell]::Create()
        try {
            $missing = [System.IO.Path]::Combine([System.IO.Path]::GetTempPath(), 'no-such-dir', 'libecr_compose.so')
            $null = $fresh.AddScript({
                    param($Manifest, $Library)
                    $env:ECR_COMPOSE_LIBRARY = $Library
                    Import-Module $Manifest -Force
                    try { Get-EcrMfaSession -SerialNumber 'arn:aws:iam::123456789012:mfa/dev' -TokenCode '123456' }
                    catch { $_ }
                }).AddArgument($manifestPath).AddArgument($missing)
            $record = $fresh.Invoke() | Select-Object -Last 1
        }
        finally {
            $fresh.Dispose()
            $env:ECR_COMPOSE_LIBRARY = $previous
        }

        $record.FullyQualifiedErrorId | Should -Be 'NativeLibraryLoadFailed,Get-EcrMfaSession'
        $record.Exception.Message | Should -BeLike '*was not found*ECR_COMPOSE_LIBRARY*'
    }
}
