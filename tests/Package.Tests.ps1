# Tests of the NuGet package that build.ps1 -Task Package makes: its content, and an install from
# a folder repository with PowerShellGet (Install-Module) and PSResourceGet (Save-PSResource).
# Everything is offline. The installs run in a child pwsh whose HOME, XDG folders and
# PSModulePath are temporary, so that the user's modules and repositories are left alone.

BeforeAll {
    $repositoryRoot = Split-Path -Parent $PSScriptRoot
    $manifestPath = if ($env:ECR_COMPOSE_MODULE) { $env:ECR_COMPOSE_MODULE } else { Join-Path $repositoryRoot 'module/EcrCompose.psd1' }
    $version = (Import-PowerShellDataFile -Path $manifestPath).ModuleVersion

    # PowerShell installed as a .NET tool runs inside the dotnet host, which needs pwsh.dll.
    $pwsh = @((Get-Process -Id $PID).Path)
    if ([System.IO.Path]::GetFileNameWithoutExtension($pwsh[0]) -notin 'pwsh', 'powershell') {
        $pwsh += Join-Path $PSHOME 'pwsh.dll'
    }

    $package = $env:ECR_COMPOSE_PACKAGE
    if (-not $package -or -not (Test-Path $package)) {
        # Run alone, this file packs the module that build.ps1 laid out in out/EcrCompose.
        $arguments = @($pwsh | Select-Object -Skip 1) + @(
            '-NoProfile', '-NonInteractive', '-File', (Join-Path $repositoryRoot 'build.ps1'), '-Task', 'Package', '-SkipBuild')
        $buildOutput = & $pwsh[0] @arguments 2>&1 | Out-String
        $package = Join-Path $repositoryRoot "out/EcrCompose.$version.nupkg"
        if (-not (Test-Path $package)) { throw "build.ps1 -Task Package made no package: $buildOutput" }
    }

    $root = Join-Path ([System.IO.Path]::GetTempPath()) "ecr-compose-package-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    $null = New-Item -ItemType Directory -Path $root

    Add-Type -AssemblyName System.IO.Compression.FileSystem
    $archive = [System.IO.Compression.ZipFile]::OpenRead($package)
    try {
        $entries = @($archive.Entries | ForEach-Object { [uri]::UnescapeDataString($_.FullName) })
    }
    finally {
        $archive.Dispose()
    }

    $script = Join-Path $root 'install.ps1'
    Set-Content -Path $script -Encoding utf8 -Value @'
param([string] $Package, [string] $Root)
$ErrorActionPreference = 'Stop'
$result = [ordered] @{}
$repository = Join-Path $Root 'repository'
$null = New-Item -ItemType Directory -Path $repository
Copy-Item -Path $Package -Destination $repository

Register-PSRepository -Name EcrComposeLocal -SourceLocation $repository -PublishLocation $repository -InstallationPolicy Trusted
$result.FoundVersion = [string] (Find-Module -Name EcrCompose -Repository EcrComposeLocal).Version
Install-Module -Name EcrCompose -Repository EcrComposeLocal -Scope CurrentUser
$installed = @(Get-Module -ListAvailable -Name EcrCompose)
$result.InstalledCount = $installed.Count
$result.InstalledBase = $installed[0].ModuleBase
Import-Module EcrCompose
$result.Commands = @(Get-Command -Module EcrCompose | ForEach-Object Name | Sort-Object)
$result.LibraryPath = & (Get-Module EcrCompose) { Get-EcrNativeLibraryPath }
$result.Removed = (Clear-EcrMfaSession -CachePath (Join-Path $Root 'cache') -PassThru).Removed
$result.AboutTopic = (Get-Help -Name about_EcrCompose | Out-String) -match 'SHORT DESCRIPTION'
Remove-Module EcrCompose

Register-PSResourceRepository -Name EcrComposeFolder -Uri $repository -Trusted
$saved = Join-Path $Root 'saved'
$null = New-Item -ItemType Directory -Path $saved
Save-PSResource -Name EcrCompose -Repository EcrComposeFolder -Path $saved -TrustRepository
$savedManifest = @(Get-ChildItem -Path $saved -Filter 'EcrCompose.psd1' -Recurse)[0].FullName
$result.SavedManifest = $savedManifest
Import-Module $savedManifest
$result.SavedCommands = @(Get-Command -Module EcrCompose | ForEach-Object Name | Sort-Object)
$result | ConvertTo-Json -Compress
'@

    $isolated = @{
        HOME = Join-Path $root 'home'
        XDG_DATA_HOME = Join-Path $root 'home/.local/share'
        XDG_CONFIG_HOME = Join-Path $root 'home/.config'
        XDG_CACHE_HOME = Join-Path $root 'home/.cache'
        PSModulePath = Join-Path $PSHOME 'Modules'
        ECR_COMPOSE_LIBRARY = $null
        ECR_COMPOSE_CACHE_DIR = $null
    }
    $saved = @{}
    foreach ($name in $isolated.Keys) {
        $saved[$name] = [Environment]::GetEnvironmentVariable($name)
        [Environment]::SetEnvironmentVariable($name, $isolated[$name])
    }

    try {
        $arguments = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-NonInteractive', '-File', $script, $package, $root)
        $output = @(& $pwsh[0] @arguments 2>&1 | ForEach-Object { "$_" })
        $exitCode = $LASTEXITCODE
    }
    finally {
        foreach ($name in $saved.Keys) {
            [Environment]::SetEnvironmentVariable($name, $saved[$name])
        }
    }

    $installResult = $null
    $json = $output | Where-Object { $_.StartsWith('{') } | Select-Object -Last 1
    if ($json) {
        $installResult = $json | ConvertFrom-Json
    }

    $publicNames = @('Clear-EcrMfaSession', 'Connect-EcrRegistry', 'Get-EcrMfaSession', 'Push-ComposeToEcr')
}

AfterAll {
    if ($root) {
        Remove-Item -Path $root -Recurse -Force -ErrorAction SilentlyContinue
    }
}

Describe 'Module package' {
    Context 'content' {
        It 'is named after the module and its version' {
            Split-Path -Leaf $package | Should -Be "EcrCompose.$version.nupkg"
        }

        It 'holds <_>' -ForEach @(
            'EcrCompose.psd1', 'EcrCompose.psm1', 'EcrCompose.Format.ps1xml', 'EcrCompose.nuspec',
            'Private/NativeMethods.cs', 'en-US/about_EcrCompose.help.txt'
        ) {
            $entries | Should -Contain $_
        }

        It 'holds every file of the manifest FileList' {
            $fileList = (Import-PowerShellDataFile -Path $manifestPath).FileList
            @($fileList | Where-Object { $_ -notin $entries }) | Should -BeNullOrEmpty
        }

        It 'holds a native library under runtimes/<rid>/native' {
            @($entries | Where-Object { $_ -match '^runtimes/[a-z]+-[a-z0-9]+/native/(lib)?ecr_compose\.(so|dll|dylib)$' }).Count |
                Should -BeGreaterThan 0
        }
    }

    Context 'Install-Module from a folder repository' {
        It 'runs without errors' {
            $exitCode | Should -Be 0 -Because ($output -join "`n")
        }

        It 'finds the package version' {
            $installResult.FoundVersion | Should -Be $version
        }

        It 'installs into the temporary user scope' {
            $installResult.InstalledBase | Should -BeLike "$root*"
        }

        It 'installs one copy' {
            $installResult.InstalledCount | Should -Be 1
        }

        It 'exports the four commands' {
            @($installResult.Commands) | Should -Be $publicNames
        }

        It 'takes the native library from the package' {
            $installResult.LibraryPath | Should -BeLike "$($installResult.InstalledBase)*runtimes*native*"
        }

        It 'runs the native library' {
            $installResult.Removed | Should -Be 0
        }

        It 'installs the about topic' {
            $installResult.AboutTopic | Should -BeTrue
        }
    }

    Context 'Save-PSResource from a folder repository' {
        It 'saves the module into the folder' {
            $installResult.SavedManifest | Should -BeLike "$root*EcrCompose.psd1"
        }

        It 'exports the four commands' {
            @($installResult.SavedCommands) | Should -Be $publicNames
        }
    }
}
