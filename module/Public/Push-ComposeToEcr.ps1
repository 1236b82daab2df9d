function Push-ComposeToEcr {
    <#
    .SYNOPSIS
    Pushes the images of a docker compose project to Amazon ECR.

    .DESCRIPTION
    Reads the compose files like docker compose does (env files, profiles, variable interpolation),
    finds the image of each service, and pushes every image whose registry is an ECR registry (or
    an alias of one) from the local docker engine to that registry. Images of other registries and
    services that only have a build section are skipped, with the reason in the result.

    Writes one EcrCompose.PushResult per image as soon as it is pushed, skipped or failed. A failed
    image is also written as a non-terminating error; an error that stops the whole push, such as
    rejected credentials, is a terminating error. Progress goes to the progress stream and log
    lines to the verbose and debug streams.

    When the push ends, an EcrCompose.PushSummary (images pushed, skipped and failed, bytes
    uploaded, duration) goes to the information stream, tagged EcrCompose and PushSummary, never
    to the output: -InformationAction Continue prints it as one line, and -InformationVariable
    keeps it for a script.

    With -WhatIf nothing is pushed: the command reads the project, asks the library for the plan
    and prints one "What if" line per image: the registry and repository it would be pushed to, or
    why it would be skipped.

    .PARAMETER Path
    The compose files, merged in order like docker compose -f. Relative paths are resolved against
    the current PowerShell location. Defaults to the first of compose.yaml, compose.yml,
    docker-compose.yml and docker-compose.yaml found in the current location or its parents, as
    docker compose looks for them.

    .PARAMETER Session
    An MFA session from Get-EcrMfaSession. Its credentials are used, and its region when -Region
    is not given. Accepted from the pipeline. Without it, the default AWS credentials are used.

    .PARAMETER Service
    Pushes only the images of these services. Defaults to every service. Tab completion offers
    the services of the compose files of -Path, or of the default compose file.

    .PARAMETER RegistryAlias
    Maps other registry hosts to ECR registries: keys are registry hosts in the compose file (such
    as 127.0.0.1:5000), values are ECR registry hosts whose authorization is used for them.

    .PARAMETER EnvFile
    Env files for variable interpolation, like docker compose --env-file. Defaults to .env next to
    the first compose file.

    .PARAMETER Profile
    Compose profiles to enable, like docker compose --profile.

    .PARAMETER ProfileName
    The AWS profile. Defaults to AWS_PROFILE, then to the default profile.

    .PARAMETER Region
    The AWS region. Defaults to the region of the session, then to AWS_REGION and the profile.

    .PARAMETER EndpointUrl
    An absolute http or https URL that replaces the AWS endpoints. Defaults to AWS_ENDPOINT_URL.

    .PARAMETER DockerHost
    The docker engine that holds the images, such as tcp://127.0.0.1:2375. Defaults to
    DOCKER_HOST, then to the platform default.

    .PARAMETER Strict
    Fails instead of skipping when an image has no ECR registry or a service has no image.

    .PARAMETER CreateRepository
    Creates missing ECR repositories. Without it, an image whose repository does not exist fails
    with RepositoryNotFound and the other images are still pushed.

    .PARAMETER TagMutability
    Tag mutability of the repositories that -CreateRepository creates: Mutable (the ECR default)
    or Immutable.

    .PARAMETER ScanOnPush
    Turns on image scanning on push for the repositories that -CreateRepository creates.

    .PARAMETER Via
    How images travel: Native sends them straight to the registry over the OCI distribution API,
    reading them from the engine; Docker has the engine push them with credentials sent per
    request; Auto (the default) lets the library choose.

    .PARAMETER Source
    Image sources other than the docker engine: keys are service names or image references, values
    are oci-layout:PATH, oci-layout:PATH#REF, docker-archive:PATH or docker-archive:PATH#IMAGE.
    Relative paths are resolved against the current PowerShell location.

    .PARAMETER MaxConcurrentUploads
    The maximum number of blob uploads at once across all images, for the native path. Defaults to 6.

    .PARAMETER CompressionLevel
    The gzip level, 1 (fastest) to 12 (smallest), of the layers that the native path compresses
    from the engine's export or a docker archive. Defaults to 4, which stores about what docker
    push stores. Lower levels suit fast links to the registry, where the CPU limits the push;
    higher ones suit slow links. A layer pushed before keeps the compressed form recorded in the
    layer digest cache, whatever the level; the engine path (-Via Docker) compresses on its own.

    .PARAMETER CaFile
    A PEM file of a certificate authority that signs the registries' certificates, trusted besides
    the system's.

    .EXAMPLE
    Get-EcrMfaSession -ProfileName dev | Push-ComposeToEcr -InformationAction Continue

    The daily flow: pushes the images of the compose project in the current location with the
    cached session of the profile dev (or a new one, after asking for the MFA code), and prints
    the summary line at the end.

    .EXAMPLE
    Get-EcrMfaSession arn:aws:iam::123456789012:mfa/dev 123456 | Push-ComposeToEcr

    Pushes the images of the compose project in the current location with a new MFA session.

    .EXAMPLE
    $results = Push-ComposeToEcr -Path ./compose.yaml -CreateRepository -InformationVariable summary -ErrorAction Stop
    $summary.MessageData | Format-List

    In a CI job, pushes with the credentials of the environment (AWS_ACCESS_KEY_ID and
    AWS_SECRET_ACCESS_KEY, or the job's role), stops at the first failed image, and keeps the
    results and the summary for a report.

    .EXAMPLE
    Push-ComposeToEcr -Path ./compose.yaml, ./compose.prod.yaml -Service web, worker -Session $session -WhatIf

    Shows which images of the services web and worker would be pushed, without pushing.

    .EXAMPLE
    Push-ComposeToEcr -Session $session -RegistryAlias @{ 'localhost:5000' = '123456789012.dkr.ecr.us-east-1.amazonaws.com' } |
        Format-Table Service, Reference, Digest

    Pushes images that the compose file names with localhost:5000 to that ECR registry, and shows
    their digests.

    .EXAMPLE
    Push-ComposeToEcr -Session $session -CreateRepository -TagMutability Immutable -Source @{ web = 'oci-layout:./build/web' }

    Pushes the image of the service web from an OCI image layout folder instead of the engine, and
    creates missing repositories with immutable tags.

    .INPUTS
    EcrCompose.MfaSession

    .OUTPUTS
    EcrCompose.PushResult
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType('EcrCompose.PushResult')]
    param(
        [Parameter(Position = 0)]
        [ValidateNotNullOrEmpty()]
        [string[]] $Path,

        [Parameter(ValueFromPipeline)]
        [EcrCompose.MfaSession] $Session,

        [ValidateNotNullOrEmpty()]
        [string[]] $Service,

        [ValidateNotNull()]
        [hashtable] $RegistryAlias,

        [ValidateNotNullOrEmpty()]
        [string[]] $EnvFile,

        [ValidateNotNullOrEmpty()]
        [string[]] $Profile,

        [ValidateNotNullOrEmpty()]
        [string] $ProfileName,

        [ValidatePattern('^[a-z0-9-]+$')]
        [string] $Region,

        [ValidateScript({ Test-EcrEndpointUrl -Url $_ })]
        [string] $EndpointUrl,

        [ValidatePattern('^(unix|tcp|npipe|http|https)://')]
        [string] $DockerHost,

        [switch] $Strict,

        [switch] $CreateRepository,

        [ValidateSet('Mutable', 'Immutable')]
        [string] $TagMutability,

        [switch] $ScanOnPush,

        [ValidateSet('Auto', 'Native', 'Docker')]
        [string] $Via = 'Auto',

        [ValidateNotNull()]
        [hashtable] $Source,

        [ValidateRange(1, 64)]
        [int] $MaxConcurrentUploads,

        [ValidateRange(1, 12)]
        [int] $CompressionLevel,

        [ValidateNotNullOrEmpty()]
        [string] $CaFile
    )

    begin {
        # Windows PowerShell 5.1 turns -Debug into Inquire, which would stop at every log line.
        if ($DebugPreference -eq 'Inquire' -and $PSBoundParameters.ContainsKey('Debug')) {
            $DebugPreference = 'Continue'
        }
    }

    process {
        # The library resolves relative paths against the process working directory, which
        # Set-Location does not change, so every path it gets is absolute.
        $location = Resolve-EcrFileSystemPath -Path '.' -Cmdlet $PSCmdlet
        $composeFiles = @($Path | Where-Object { $_ } | ForEach-Object {
                Resolve-EcrFileSystemPath -Path $_ -Cmdlet $PSCmdlet
            })

        $request = @{
            composeFiles = [string[]] $composeFiles
            workingDirectory = $location
            envFiles = [string[]] @($EnvFile | Where-Object { $_ } | ForEach-Object {
                    Resolve-EcrFileSystemPath -Path $_ -Cmdlet $PSCmdlet
                })
            profiles = [string[]] @($Profile | Where-Object { $_ })
            services = [string[]] @($Service | Where-Object { $_ })
            strict = $Strict.IsPresent
            dryRun = [bool] $WhatIfPreference
            via = $Via.ToLowerInvariant()
            createRepository = $CreateRepository.IsPresent
            scanOnPush = $ScanOnPush.IsPresent
        }
        if ($TagMutability) {
            $request.tagMutability = $TagMutability.ToUpperInvariant()
        }

        if ($Source) {
            $request.sources = ConvertTo-EcrImageSources -Source $Source -Cmdlet $PSCmdlet
        }

        if ($MaxConcurrentUploads) {
            $request.maxConcurrentUploads = $MaxConcurrentUploads
        }

        if ($CompressionLevel) {
            $request.compressionLevel = $CompressionLevel
        }

        if ($CaFile) {
            $request.caFile = Resolve-EcrFileSystemPath -Path $CaFile -Cmdlet $PSCmdlet
        }

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

        $docker = New-EcrDockerOptions -DockerHost $DockerHost -Cmdlet $PSCmdlet
        if ($docker.Count -gt 0) {
            $request.docker = $docker
        }

        if ($WhatIfPreference) {
            # The dry run reads the project and resolves registries but uploads nothing.
            $plan = Invoke-EcrOperation -Operation push -Request $request -Cmdlet $PSCmdlet
            # Each image gets a "What if" line, the skipped ones too, so the output is the whole plan.
            foreach ($image in $plan) {
                $services = $image.Service -join ', '
                $line = switch ($image.Status) {
                    'Planned' {
                        "Push $($image.Reference) of $services to registry $($image.Registry), repository $($image.Repository)."
                    }
                    'Failed' {
                        "Fail $($image.Reference) of ${services}: $($image.Reason)"
                    }
                    default {
                        "Skip $($image.Reference) of ${services}: $($image.Reason)"
                    }
                }

                [void] $PSCmdlet.ShouldProcess($line, $line, 'Push-ComposeToEcr')
            }

            return
        }

        $project = if ($composeFiles.Count -gt 0) { $composeFiles -join ', ' } else { $location }
        if (-not $PSCmdlet.ShouldProcess($project, 'Push the compose images to Amazon ECR')) {
            return
        }

        Invoke-EcrOperation -Operation push -Request $request -Cmdlet $PSCmdlet
    }
}
