@{
    RootModule = 'EcrCompose.psm1'
    ModuleVersion = '0.1.0'
    GUID = '3f0d8b5e-6c1a-4f7e-9a2d-5b8c4e1f7a93'
    Author = 'EcrCompose contributors'
    CompanyName = 'EcrCompose contributors'
    Copyright = '(c) EcrCompose contributors. Apache License 2.0.'
    Description = 'Gets an MFA session from AWS STS, logs docker in to Amazon ECR and pushes the images of a docker compose project to ECR, through a native library.'
    PowerShellVersion = '5.1'
    CompatiblePSEditions = @('Core', 'Desktop')
    FormatsToProcess = @('EcrCompose.Format.ps1xml')
    FunctionsToExport = @('Clear-EcrMfaSession', 'Connect-EcrRegistry', 'Get-EcrMfaSession', 'Push-ComposeToEcr')
    CmdletsToExport = @()
    VariablesToExport = @()
    AliasesToExport = @()
    FileList = @(
        'EcrCompose.Format.ps1xml',
        'EcrCompose.psd1',
        'EcrCompose.psm1',
        'Private/ConvertTo-EcrCompletionResult.ps1',
        'Private/ConvertTo-EcrCredentials.ps1',
        'Private/ConvertTo-EcrImageSources.ps1',
        'Private/ConvertTo-EcrPushResult.ps1',
        'Private/ConvertTo-EcrPushSummary.ps1',
        'Private/ConvertTo-EcrRedactedText.ps1',
        'Private/ConvertTo-EcrRegistryAliases.ps1',
        'Private/ConvertTo-EcrUtcDateTime.ps1',
        'Private/Export-EcrSessionEnvironment.ps1',
        'Private/Get-EcrAwsProfileName.ps1',
        'Private/Get-EcrAwsRegionName.ps1',
        'Private/Get-EcrComposeServiceName.ps1',
        'Private/Get-EcrLogLevel.ps1',
        'Private/Get-EcrNativeLibrary.ps1',
        'Private/Get-EcrNativeLibraryPath.ps1',
        'Private/Get-EcrNonInteractiveReason.ps1',
        'Private/Get-EcrRuntimeIdentifier.ps1',
        'Private/Get-EcrSessionEnvironment.ps1',
        'Private/Get-EcrStatusName.ps1',
        'Private/Invoke-EcrOperation.ps1',
        'Private/NativeMethods.cs',
        'Private/New-EcrAwsOptions.ps1',
        'Private/New-EcrDockerOptions.ps1',
        'Private/New-EcrErrorRecord.ps1',
        'Private/Read-EcrTokenCode.ps1',
        'Private/Register-EcrArgumentCompleter.ps1',
        'Private/Resolve-EcrFileSystemPath.ps1',
        'Private/Restore-EcrSessionEnvironment.ps1',
        'Private/Set-EcrEnvironmentVariable.ps1',
        'Private/Test-EcrEndpointUrl.ps1',
        'Private/Write-EcrEvent.ps1',
        'Public/Clear-EcrMfaSession.ps1',
        'Public/Connect-EcrRegistry.ps1',
        'Public/Get-EcrMfaSession.ps1',
        'Public/Push-ComposeToEcr.ps1',
        'en-US/about_EcrCompose.help.txt'
    )
    PrivateData = @{
        PSData = @{
            Tags = @('AWS', 'ECR', 'Docker', 'Compose', 'MFA', 'STS', 'Container', 'Registry', 'PSEdition_Core', 'PSEdition_Desktop', 'Windows', 'Linux', 'MacOS')
            LicenseUri = 'https://www.apache.org/licenses/LICENSE-2.0'
            # NOTE: ProjectUri is left out until the project has a public home.
            ReleaseNotes = 'First release: Get-EcrMfaSession, Clear-EcrMfaSession, Connect-EcrRegistry and Push-ComposeToEcr, with help, about_EcrCompose and tab completion.'
        }
    }
}
