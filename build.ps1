<#
.SYNOPSIS
Builds, tests, demonstrates and lays out the EcrCompose module.

.DESCRIPTION
Tasks:
  Build    cargo build, the header check (cargo test --test header), and the module layout in
           out/EcrCompose with runtimes/<rid>/native/<library> for this platform and for every
           library found under target/<target triple>/<profile>.
  Test     Build, then cargo test and the Pester tests in tests/*.Tests.ps1 against the built
           module. Prints "N passed, N failed, N skipped" last; with CI=true, any failure makes
           the exit code 1.
  Example  Build, then pushes the images of examples/hello-compose to a local registry through
           the local STS and docker engine stand-ins, and prints them with their digests.
  Package  Build, then checks the manifest and packs out/EcrCompose into
           out/EcrCompose.<version>.nupkg, a NuGet package that Install-Module and
           Install-PSResource take from a folder registered as a repository, and that
           Publish-PSResource -NupkgPath publishes to a gallery.
  Clean    Removes out/. The cargo target folder is left alone.

Test also packages the module after the build and gives the tests its path in
ECR_COMPOSE_PACKAGE.

.PARAMETER Task
The task to run. Defaults to Build.

.PARAMETER Configuration
Release (cargo build --release) or Debug. Defaults to Release.

.PARAMETER SkipBuild
Package: packs out/EcrCompose as it is, without cargo build and without laying it out again.

.EXAMPLE
./build.ps1 -Task Test

Builds the library and the module, and runs every test.

.NOTES
The script needs PowerShell 7 because the tests do; the module it builds also runs on Windows
PowerShell 5.1.
#>
#Requires -Version 7.0
[CmdletBinding()]
param(
    [ValidateSet('Build', 'Test', 'Example', 'Package', 'Clean')]
    [string] $Task = 'Build',

    [ValidateSet('Release', 'Debug')]
    [string] $Configuration = 'Release',

    [switch] $SkipBuild
)

$ErrorActionPreference = 'Stop'
Set-StrictMode -Version 3.0

$RepositoryRoot = $PSScriptRoot
$OutputRoot = Join-Path $RepositoryRoot 'out'
$ModuleOutput = Join-Path $OutputRoot 'EcrCompose'
$PesterManifest = Join-Path $RepositoryRoot '.tools/nuget/pester/5.7.1/tools/Pester.psd1'

# Folder names of runtimes/<rid> for the cargo target triples that the module supports. When two
# triples give the same folder, the later one wins: a Windows library built with MSVC replaces
# one cross-built with MinGW.
$RuntimeIdentifiers = [ordered] @{
    'x86_64-unknown-linux-gnu' = 'linux-x64'
    'aarch64-unknown-linux-gnu' = 'linux-arm64'
    'x86_64-pc-windows-gnu' = 'win-x64'
    'x86_64-pc-windows-msvc' = 'win-x64'
    'aarch64-pc-windows-msvc' = 'win-arm64'
    'x86_64-apple-darwin' = 'osx-x64'
    'aarch64-apple-darwin' = 'osx-arm64'
}


function Get-PwshCommand {
    # Returns the program and leading arguments that start this PowerShell again.
    $processPath = (Get-Process -Id $PID).Path
    if ([System.IO.Path]::GetFileNameWithoutExtension($processPath) -in 'pwsh', 'powershell') {
        return @($processPath)
    }

    # PowerShell installed as a .NET tool runs inside the dotnet host.
    $assembly = Join-Path $PSHOME 'pwsh.dll'
    if (Test-Path $assembly) {
        return @($processPath, $assembly)
    }

    return @('pwsh')
}


function Invoke-Native {
    # Runs a program, echoes its output, and fails when it exits non-zero.
    param(
        [Parameter(Mandatory)] [string] $FilePath,
        [string[]] $ArgumentList = @(),
        # Collects every output line (stdout and stderr) in this list when given.
        [System.Collections.Generic.List[string]] $Lines
    )

    Write-Host "> $FilePath $($ArgumentList -join ' ')" -ForegroundColor Cyan
    $previous = $ErrorActionPreference
    $ErrorActionPreference = 'Continue'
    try {
        & $FilePath @ArgumentList 2>&1 | ForEach-Object {
            $line = "$_"
            if ($null -ne $Lines) { $Lines.Add($line) }
            Write-Host $line
        }
        $exitCode = $LASTEXITCODE
    }
    finally {
        $ErrorActionPreference = $previous
    }

    return $exitCode
}


function Get-LibraryFileName {
    param([Parameter(Mandatory)] [string] $RuntimeIdentifier)

    switch -Wildcard ($RuntimeIdentifier) {
        'win-*' { 'ecr_compose.dll' }
        'osx-*' { 'libecr_compose.dylib' }
        default { 'libecr_compose.so' }
    }
}


function Get-HostRuntimeIdentifier {
    $architecture = switch ([System.Runtime.InteropServices.RuntimeInformation]::ProcessArchitecture) {
        'X64' { 'x64' }
        'Arm64' { 'arm64' }
        default { throw "No runtime identifier for the CPU architecture $_." }
    }

    if ($IsWindows) { return "win-$architecture" }
    if ($IsMacOS) { return "osx-$architecture" }
    return "linux-$architecture"
}


function Invoke-BuildTask {
    $profileFolder = $Configuration.ToLowerInvariant()
    $cargoArguments = @('build')
    if ($Configuration -eq 'Release') { $cargoArguments += '--release' }
    if ((Invoke-Native cargo $cargoArguments) -ne 0) { throw 'cargo build failed.' }

    if (Test-Path (Join-Path $RepositoryRoot 'tests/header.rs')) {
        if ((Invoke-Native cargo @('test', '--test', 'header')) -ne 0) {
            throw 'include/ecr_compose.h is out of date: the header test failed (see above).'
        }
    }

    if (Test-Path $ModuleOutput) { Remove-Item $ModuleOutput -Recurse -Force }
    $null = New-Item -ItemType Directory -Path $ModuleOutput -Force
    $moduleSource = Join-Path $RepositoryRoot 'module'
    foreach ($item in Get-ChildItem -Path $moduleSource) {
        Copy-Item -Path $item.FullName -Destination $ModuleOutput -Recurse -Force
    }

    $hostRuntime = Get-HostRuntimeIdentifier
    $libraries = [ordered] @{}
    $libraries[$hostRuntime] = Join-Path $RepositoryRoot "target/$profileFolder/$(Get-LibraryFileName $hostRuntime)"
    foreach ($triple in $RuntimeIdentifiers.Keys) {
        $runtime = $RuntimeIdentifiers[$triple]
        $crossBuilt = Join-Path $RepositoryRoot "target/$triple/$profileFolder/$(Get-LibraryFileName $runtime)"
        if (Test-Path $crossBuilt) { $libraries[$runtime] = $crossBuilt }
    }

    foreach ($runtime in $libraries.Keys) {
        $source = $libraries[$runtime]
        if (-not (Test-Path $source)) { throw "The library '$source' is missing after cargo build." }

        $destination = Join-Path $ModuleOutput "runtimes/$runtime/native"
        $null = New-Item -ItemType Directory -Path $destination -Force
        Copy-Item -Path $source -Destination $destination -Force
        Write-Host "Laid out $runtime from $source"
    }

    Write-Host "Module laid out in $ModuleOutput"
}


function Get-CargoTestCounts {
    # Sums the "test result:" lines that cargo test prints once per test binary.
    param([System.Collections.Generic.List[string]] $Lines)

    $counts = @{ Passed = 0; Failed = 0; Skipped = 0 }
    foreach ($line in $Lines) {
        if ($line -match 'test result: \w+\. (\d+) passed; (\d+) failed; (\d+) ignored') {
            $counts.Passed += [int] $Matches[1]
            $counts.Failed += [int] $Matches[2]
            $counts.Skipped += [int] $Matches[3]
        }
    }

    return $counts
}


function Invoke-PesterTests {
    if (-not (Test-Path $PesterManifest)) {
        throw "Pester 5.7.1 is missing at '$PesterManifest': run scripts/bootstrap.sh first."
    }

    # Pester runs in its own process so that the tests' environment changes and loaded
    # native libraries stay out of this one.
    $resultFile = Join-Path $OutputRoot 'pester-counts.json'
    if (Test-Path $resultFile) { Remove-Item $resultFile -Force }
    $script = @'
param($PesterManifest, $TestsFolder, $ResultFile, $ReportFile)
Import-Module $PesterManifest -Force
$configuration = New-PesterConfiguration
$configuration.Run.Path = $TestsFolder
$configuration.Run.PassThru = $true
$configuration.Output.Verbosity = 'Detailed'
$configuration.TestResult.Enabled = $true
$configuration.TestResult.OutputFormat = 'NUnitXml'
$configuration.TestResult.OutputPath = $ReportFile
$result = Invoke-Pester -Configuration $configuration
# Containers that failed to run (a broken BeforeAll, a parse error) count as failures.
$failed = $result.FailedCount + $result.FailedBlocksCount + $result.FailedContainersCount
@{ Passed = $result.PassedCount; Failed = $failed; Skipped = $result.SkippedCount + $result.NotRunCount } |
    ConvertTo-Json | Set-Content -Path $ResultFile -Encoding utf8
'@
    $scriptFile = Join-Path $OutputRoot 'run-pester.ps1'
    Set-Content -Path $scriptFile -Value $script -Encoding utf8

    $env:ECR_COMPOSE_MODULE = Join-Path $ModuleOutput 'EcrCompose.psd1'
    $pwsh = @(Get-PwshCommand)
    $arguments = @($pwsh | Select-Object -Skip 1) + @(
        '-NoProfile', '-NonInteractive', '-File', $scriptFile,
        $PesterManifest, (Join-Path $RepositoryRoot 'tests'), $resultFile, (Join-Path $OutputRoot 'pester-results.xml')
    )
    $null = Invoke-Native $pwsh[0] $arguments
    if (-not (Test-Path $resultFile)) {
        return @{ Passed = 0; Failed = 1; Skipped = 0 }
    }

    $counts = Get-Content -Path $resultFile -Raw | ConvertFrom-Json
    return @{ Passed = [int] $counts.Passed; Failed = [int] $counts.Failed; Skipped = [int] $counts.Skipped }
}


function Invoke-TestTask {
    Invoke-BuildTask

    $cargoLines = [System.Collections.Generic.List[string]]::new()
    $cargoExit = Invoke-Native cargo @('test') -Lines $cargoLines
    $cargo = Get-CargoTestCounts -Lines $cargoLines
    if ($cargoExit -ne 0 -and $cargo.Failed -eq 0) {
        # cargo test stopped before running tests, for example on a compile error.
        $cargo.Failed = 1
    }

    # A packaging failure is left to the package tests to report, with the rest of the results.
    try {
        $env:ECR_COMPOSE_PACKAGE = New-ModulePackage
    }
    catch {
        Write-Host "Packaging failed: $($_.Exception.Message)" -ForegroundColor Red
        $env:ECR_COMPOSE_PACKAGE = $null
    }

    $pester = Invoke-PesterTests

    $passed = $cargo.Passed + $pester.Passed
    $failed = $cargo.Failed + $pester.Failed
    $skipped = $cargo.Skipped + $pester.Skipped
    Write-Host "cargo test: $($cargo.Passed) passed, $($cargo.Failed) failed, $($cargo.Skipped) ignored"
    Write-Host "Pester: $($pester.Passed) passed, $($pester.Failed) failed, $($pester.Skipped) skipped"
    Write-Host "$passed passed, $failed failed, $skipped skipped"

    if ($failed -gt 0 -and $env:CI -eq 'true') {
        exit 1
    }
}


function Invoke-ExampleTask {
    Invoke-BuildTask

    Import-Module (Join-Path $RepositoryRoot 'tests/StandIns.psm1') -Force
    Import-Module (Join-Path $ModuleOutput 'EcrCompose.psd1') -Force

    $state = Join-Path ([System.IO.Path]::GetTempPath()) "ecr-compose-example-$PID"
    $standIns = $null
    $savedEnvironment = $null
    try {
        $standIns = Start-StandIns -State $state -Services sts, registry, engine
        $savedEnvironment = Use-StandInEnvironment -StandIns $standIns
        $env:ECR_COMPOSE_CACHE_DIR = Join-Path $state 'session-cache'

        $ecrHost = "$($standIns.accountId).dkr.ecr.$($standIns.region).amazonaws.com"
        $project = Join-Path $RepositoryRoot 'examples/hello-compose'
        $env:REGISTRY = $standIns.registry.host
        $null = & (Join-Path $project 'Build-Images.ps1') -Registry $standIns.registry.host -DockerHost $standIns.engine.host

        $session = Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456'
        $session | Format-Table -AutoSize | Out-String -Width 250 | Write-Host

        $images = Push-ComposeToEcr -Path (Join-Path $project 'compose.yaml') -Session $session `
            -DockerHost $standIns.engine.host -RegistryAlias @{ $standIns.registry.host = $ecrHost } -CreateRepository `
            -InformationAction Continue
        # Out-String with a wide width keeps the digests whole when the console is narrow or absent.
        $service = @{ Name = 'Service'; Expression = { $_.Service -join ', ' } }
        $images | Format-Table $service, Status, Reference, Digest -AutoSize | Out-String -Width 250 | Write-Host
    }
    finally {
        if ($null -ne $standIns) { Stop-StandIns -State $state }
        if ($null -ne $savedEnvironment) { Restore-StandInEnvironment -Saved $savedEnvironment }
        Remove-Item -Path $state -Recurse -Force -ErrorAction SilentlyContinue
    }
}


function New-ModulePackage {
    # Packs out/EcrCompose into out/EcrCompose.<version>.nupkg and returns its path.
    $manifest = Test-ModuleManifest -Path (Join-Path $ModuleOutput 'EcrCompose.psd1') -ErrorAction Stop
    $package = Join-Path $OutputRoot "EcrCompose.$($manifest.Version).nupkg"
    if (Test-Path $package) { Remove-Item $package -Force }

    if (Get-Command -Name Compress-PSResource -ErrorAction SilentlyContinue) {
        # PSResourceGet 1.1 and later (PowerShell 7.5 and later ship it) pack without a repository.
        $null = Compress-PSResource -Path $ModuleOutput -DestinationPath $OutputRoot
    }
    elseif (Get-Command -Name Publish-PSResource -ErrorAction SilentlyContinue) {
        # PSResourceGet 1.0 can only publish, so it publishes to a temporary folder repository.
        $repositoryName = "EcrComposePackage$PID"
        $folder = Join-Path ([System.IO.Path]::GetTempPath()) $repositoryName
        $null = New-Item -ItemType Directory -Path $folder -Force
        try {
            $null = Register-PSResourceRepository -Name $repositoryName -Uri $folder -Trusted
            $null = Publish-PSResource -Path $ModuleOutput -Repository $repositoryName
            Copy-Item -Path (Join-Path $folder "EcrCompose.$($manifest.Version).nupkg") -Destination $package
        }
        finally {
            Unregister-PSResourceRepository -Name $repositoryName -ErrorAction SilentlyContinue
            Remove-Item -Path $folder -Recurse -Force -ErrorAction SilentlyContinue
        }
    }
    else {
        throw 'Packaging needs Microsoft.PowerShell.PSResourceGet: install it with Install-Module Microsoft.PowerShell.PSResourceGet.'
    }

    if (-not (Test-Path $package)) { throw "The package '$package' is missing after packing out/EcrCompose." }
    Write-Host "Packaged $package"
    return $package
}


function Invoke-PackageTask {
    if (-not $SkipBuild) {
        Invoke-BuildTask
    }
    elseif (-not (Test-Path (Join-Path $ModuleOutput 'EcrCompose.psd1'))) {
        throw "out/EcrCompose is missing: run build.ps1 -Task Build first, or leave out -SkipBuild."
    }

    $null = New-ModulePackage
}


Push-Location $RepositoryRoot
try {
    switch ($Task) {
        'Build' { Invoke-BuildTask }
        'Test' { Invoke-TestTask }
        'Example' { Invoke-ExampleTask }
        'Package' { Invoke-PackageTask }
        'Clean' { if (Test-Path $OutputRoot) { Remove-Item $OutputRoot -Recurse -Force } }
    }
}
finally {
    Pop-Location
}
