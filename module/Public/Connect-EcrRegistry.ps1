function Connect-EcrRegistry {
    <#
    .SYNOPSIS
    Logs docker in to Amazon ECR registries.

    .DESCRIPTION
    Gets an authorization token from ECR for each registry and writes the login to the docker
    config file (config.json in DOCKER_CONFIG, or ~/.docker), as docker login does. The password
    never appears on a command line or in any output: the library writes the file itself. After
    that, docker push and docker pull work with those registries until the token expires (ECR
    tokens last 12 hours).

    Without -Session, the default AWS credentials of the profile are used.

    Like other commands that change state, it writes no objects unless -PassThru is given. One
    line per registry goes to the information stream, tagged EcrCompose and Login, so
    -InformationAction Continue shows where docker is logged in and until when.

    .PARAMETER Registry
    The ECR registry hosts, such as 123456789012.dkr.ecr.eu-west-1.amazonaws.com, or hosts that
    RegistryAlias maps to ECR registries.

    .PARAMETER Session
    An MFA session from Get-EcrMfaSession. Its credentials are used, and its region when -Region
    is not given. Accepted from the pipeline.

    .PARAMETER RegistryAlias
    Maps other registry hosts to ECR registries: keys are the hosts docker uses (such as
    127.0.0.1:5000), values are ECR registry hosts whose authorization is used for them.

    .PARAMETER ProfileName
    The AWS profile. Defaults to AWS_PROFILE, then to the default profile.

    .PARAMETER Region
    The AWS region. Defaults to the region of the session, then to AWS_REGION and the profile.

    .PARAMETER EndpointUrl
    An absolute http or https URL that replaces the AWS endpoints. Defaults to AWS_ENDPOINT_URL.

    .PARAMETER DockerHost
    The docker engine, such as unix:///run/user/1000/docker.sock or tcp://127.0.0.1:2375. Defaults
    to DOCKER_HOST, then to the platform default.

    .PARAMETER DockerConfigPath
    The folder of the docker config file (config.json). Defaults to DOCKER_CONFIG, then to ~/.docker.

    .PARAMETER CaFile
    A PEM file of a certificate authority that signs the registries' certificates, trusted besides
    the system's when the login is checked.

    .PARAMETER PassThru
    Writes an EcrCompose.LoginResult per registry: the registry, its ECR host, account, region,
    the expiration of the login and the docker config file.

    .EXAMPLE
    Get-EcrMfaSession -ProfileName dev | Connect-EcrRegistry 123456789012.dkr.ecr.eu-west-1.amazonaws.com
    docker compose pull

    The daily flow: logs docker in with the cached session of the profile dev (or a new one,
    after asking for the MFA code), so that docker and docker compose reach the registry.

    .EXAMPLE
    Get-EcrMfaSession arn:aws:iam::123456789012:mfa/dev 123456 | Connect-EcrRegistry 123456789012.dkr.ecr.eu-west-1.amazonaws.com -PassThru

    Logs docker in to one registry with a new MFA session and shows when the login expires.

    .EXAMPLE
    Connect-EcrRegistry 123456789012.dkr.ecr.eu-west-1.amazonaws.com -DockerConfigPath $env:RUNNER_TEMP/docker -InformationAction Continue

    In a CI job, logs docker in with the credentials of the environment (AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, or the job's role) and keeps the login in a folder of the job.

    .EXAMPLE
    Connect-EcrRegistry 123456789012.dkr.ecr.eu-west-1.amazonaws.com -Session $session -DockerConfigPath ./docker-config -WhatIf

    Shows which registries would be logged in to, without calling AWS or changing the config file.

    .INPUTS
    EcrCompose.MfaSession

    .OUTPUTS
    None, or EcrCompose.LoginResult with -PassThru.
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('EcrCompose.LoginResult')]
    param(
        [Parameter(Mandatory, Position = 0)]
        [ValidateNotNullOrEmpty()]
        [string[]] $Registry,

        [Parameter(ValueFromPipeline)]
        [EcrCompose.MfaSession] $Session,

        [ValidateNotNull()]
        [hashtable] $RegistryAlias,

        [ValidateNotNullOrEmpty()]
        [string] $ProfileName,

        [ValidatePattern('^[a-z0-9-]+$')]
        [string] $Region,

        [ValidateScript({ Test-EcrEndpointUrl -Url $_ })]
        [string] $EndpointUrl,

        [ValidatePattern('^(unix|tcp|npipe|http|https)://')]
        [string] $DockerHost,

        [ValidateNotNullOrEmpty()]
        [string] $DockerConfigPath,

        [ValidateNotNullOrEmpty()]
        [string] $CaFile,

        [switch] $PassThru
    )

    begin {
        # Windows PowerShell 5.1 turns -Debug into Inquire, which would stop at every log line.
        if ($DebugPreference -eq 'Inquire' -and $PSBoundParameters.ContainsKey('Debug')) {
            $DebugPreference = 'Continue'
        }
    }

    process {
        $approved = @($Registry | Where-Object { $PSCmdlet.ShouldProcess($_, 'Log docker in to the ECR registry') })
        if ($approved.Count -eq 0) {
            return
        }

        $request = @{ registries = [string[]] $approved }
        $aws = New-EcrAwsOptions -ProfileName $ProfileName -Region $Region -EndpointUrl $EndpointUrl -Session $Session
        if ($aws.Count -gt 0) {
            $request.aws = $aws
        }

        if ($null -ne $Session) {
            $request.credentials = ConvertTo-EcrCredentials -Session $Session -Cmdlet $PSCmdlet
        }

        if ($RegistryAlias) {
            $request.registryAliases = ConvertTo-EcrRegistryAliases -RegistryAlias $RegistryAlias
        }

        if ($CaFile) {
            $request.caFile = Resolve-EcrFileSystemPath -Path $CaFile -Cmdlet $PSCmdlet
        }

        $docker = New-EcrDockerOptions -DockerHost $DockerHost -DockerConfigPath $DockerConfigPath -Cmdlet $PSCmdlet
        if ($docker.Count -gt 0) {
            $request.docker = $docker
        }

        $result = Invoke-EcrOperation -Operation login -Request $request -Cmdlet $PSCmdlet
        foreach ($login in @($result.registries | Where-Object { $null -ne $_ })) {
            $loginResult = [pscustomobject] @{
                PSTypeName = 'EcrCompose.LoginResult'
                Registry = $login.registry
                EcrHost = $login.ecrHost
                AccountId = $login.accountId
                Region = $login.region
                ExpiresAt = ConvertTo-EcrUtcDateTime -Value $login.expiresAt
                DockerConfig = $login.dockerConfig
            }
            $line = 'Logged docker in to {0} until {1:yyyy-MM-dd HH:mm:ss}Z, in {2}.' -f
                $loginResult.Registry, $loginResult.ExpiresAt, $loginResult.DockerConfig
            $PSCmdlet.WriteInformation($line, [string[]] @('EcrCompose', 'Login'))
            if ($PassThru) {
                $loginResult
            }
        }
    }
}
