function Get-EcrMfaSession {
    <#
    .SYNOPSIS
    Gets a temporary AWS session from STS with an MFA code.

    .DESCRIPTION
    Calls STS GetSessionToken with the serial number of your MFA device and the code it shows, using
    the long-term credentials of your AWS profile, and returns an EcrCompose.MfaSession. Pass that
    object to Connect-EcrRegistry or Push-ComposeToEcr with -Session, or pipe it to them.

    Without -TokenCode, a cached session is returned when there is one. Otherwise the command asks
    for the code without showing it as you type, or, where nobody can answer (pwsh
    -NonInteractive, a CI job with CI or TF_BUILD set, redirected input, a host without a user
    interface), fails with MissingTokenCode and a message that names -TokenCode.

    The session holds a secret access key and a session token. The default views, ToString() and
    the error messages of this module never show them; Select-Object *, Format-List * and
    ConvertTo-Json do. The views show the account, the MFA device, the expiration and TimeLeft,
    the time until the session expires.

    Credentials, region and endpoint come from the parameters, then from the environment
    (AWS_PROFILE, AWS_REGION, AWS_ENDPOINT_URL) and the shared AWS config files.

    Sessions are cached per profile and MFA device in sessions.json in the user's cache folder (or
    ECR_COMPOSE_CACHE_DIR): encrypted with DPAPI on Windows, readable only by the user (mode 0600)
    elsewhere. While a cached session has more than MinimumRemainingSeconds left, it is
    returned without calling STS, so the token code is not checked; FromCache is then $true. Use
    -Force for a new session, -NoCache to bypass the cache, and -CachedOnly to get a cached session
    without a code. Clear-EcrMfaSession removes cached sessions.

    With -SetEnvironment the session is also exported to this process's AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN and AWS_REGION, for the AWS CLI, docker compose and
    other tools started from it. The values they replaced are kept: later calls of this command
    still reach STS with your long-term credentials, and Clear-EcrMfaSession puts the old values
    back.

    .PARAMETER SerialNumber
    The MFA device: the ARN of a virtual device, such as arn:aws:iam::123456789012:mfa/dev, or the
    serial number of a hardware device. 9 to 256 characters. Defaults to the device of -Session,
    then to mfa_serial of the profile.

    .PARAMETER TokenCode
    The 6-digit code that the MFA device shows now. A code can be used once. Without it, a cached
    session is returned when there is one, and otherwise the command asks for the code (or fails
    with MissingTokenCode where it cannot ask).

    .PARAMETER Session
    An earlier session, for example one that expires soon. Its MFA device, profile and region
    are the defaults of -SerialNumber, -ProfileName and -Region, so that
    $session | Get-EcrMfaSession -Force renews it. Its profile is passed on only when it differs
    from the one that AWS_PROFILE (or default) selects, because a named profile is the only
    source of credentials. Accepted from the pipeline.

    .PARAMETER DurationInSeconds
    How long the session lasts, in seconds: 900 (15 minutes) to 129600 (36 hours). Defaults to
    duration_seconds of the profile, then to 43200 (12 hours), the default of STS. Sessions of
    the AWS account root user last at most 3600 seconds (1 hour): STS shortens longer requests to
    one hour.

    .PARAMETER ProfileName
    The AWS profile with the long-term credentials of the IAM user. Defaults to the profile of
    -Session, then to AWS_PROFILE, then to the default profile.

    .PARAMETER Region
    The AWS region of the STS endpoint, such as eu-west-1. It is kept in the session and used by
    the other commands when they get no -Region. Defaults to the region of -Session, then to
    AWS_REGION, then to the profile.

    .PARAMETER EndpointUrl
    An absolute http or https URL that replaces the AWS endpoints, for a local stand-in of AWS.
    Defaults to AWS_ENDPOINT_URL.

    .PARAMETER Force
    Gets a new session from STS even when a cached one is still good, and caches the new one.

    .PARAMETER NoCache
    Neither reads nor writes the session cache.

    .PARAMETER CachedOnly
    Returns the cached session of the profile and MFA device without asking for a code, and fails
    with NoCachedSession when there is none with enough time left.

    .PARAMETER CachePath
    The folder of the session cache. Defaults to ECR_COMPOSE_CACHE_DIR, then to the user's cache
    folder.

    .PARAMETER MinimumRemainingSeconds
    A cached session with less time left than this, in seconds, is not reused. Defaults to 300.

    .PARAMETER SetEnvironment
    Also sets AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN of this process to
    the session, and AWS_REGION when the session has a region. Nothing is printed. The variables
    last until the process ends or Clear-EcrMfaSession restores them.

    .EXAMPLE
    Get-EcrMfaSession -ProfileName dev | Push-ComposeToEcr

    The daily flow. It uses mfa_serial and duration_seconds of the profile dev, reuses its cached
    session when one is left, and otherwise asks for the MFA code once.

    .EXAMPLE
    $session = Get-EcrMfaSession -SerialNumber arn:aws:iam::123456789012:mfa/dev -TokenCode 123456

    Gets a 12-hour session with the default profile and keeps it in $session.

    .EXAMPLE
    Get-EcrMfaSession -ProfileName dev -SetEnvironment
    aws ecr describe-repositories
    docker compose pull

    Gets or reuses the session of the profile dev and exports it to this process, so that the
    AWS CLI and other tools run with it.

    .EXAMPLE
    Get-EcrMfaSession arn:aws:iam::123456789012:mfa/dev 123456 -ProfileName dev -Region eu-west-1 -DurationInSeconds 3600 |
        Push-ComposeToEcr -Path ./compose.yaml

    Gets a one-hour session with the profile dev and pushes the images of a compose project with it.

    .EXAMPLE
    $session | Get-EcrMfaSession -Force

    Asks for a new code and gets a new session for the same MFA device, profile and region.

    .EXAMPLE
    $code = oathtool --totp --base32 $env:MFA_SEED
    Get-EcrMfaSession -SerialNumber $env:MFA_SERIAL -TokenCode $code -NoCache | Push-ComposeToEcr -CreateRepository

    In a CI job whose IAM user must use MFA, computes the code from the seed of a virtual MFA
    device that the CI service keeps as a secret, and pushes without caching the session on the
    build agent. Without -TokenCode the command would fail at once rather than wait for input.

    .EXAMPLE
    $session = Get-EcrMfaSession -SerialNumber arn:aws:iam::123456789012:mfa/dev -CachedOnly

    Gets the cached session of the default profile without a code, for example in a second window.

    .INPUTS
    EcrCompose.MfaSession

    .OUTPUTS
    EcrCompose.MfaSession
    #>
    [CmdletBinding()]
    [OutputType([EcrCompose.MfaSession])]
    param(
        [Parameter(Position = 0)]
        [ValidateScript({
            if ($_.Length -ge 9 -and $_.Length -le 256 -and $_ -match '^[\w+=/:,.@-]+$') {
                return $true
            }

            throw ('The MFA serial number is invalid: give the ARN of a virtual device, such as ' +
                'arn:aws:iam::123456789012:mfa/dev, or the serial number of a hardware device ' +
                '(9 to 256 letters, digits and +=/:,.@-).')
        })]
        [string] $SerialNumber,

        [Parameter(Position = 1)]
        [ValidateScript({
            if ($_ -match '^[0-9]{6}$') {
                return $true
            }

            # The value is not repeated: a mistyped code is still close to a valid one.
            throw 'The MFA code is invalid: give the 6 digits that the MFA device shows now.'
        })]
        [string] $TokenCode,

        [Parameter(ValueFromPipeline)]
        [EcrCompose.MfaSession] $Session,

        [ValidateRange(900, 129600)]
        [int] $DurationInSeconds = 43200,

        [ValidateNotNullOrEmpty()]
        [string] $ProfileName,

        [ValidatePattern('^[a-z0-9-]+$')]
        [string] $Region,

        [ValidateScript({ Test-EcrEndpointUrl -Url $_ })]
        [string] $EndpointUrl,

        [switch] $Force,

        [switch] $NoCache,

        [switch] $CachedOnly,

        [ValidateNotNullOrEmpty()]
        [string] $CachePath,

        [ValidateRange(0, 129600)]
        [int] $MinimumRemainingSeconds = 300,

        [switch] $SetEnvironment
    )

    begin {
        # Windows PowerShell 5.1 turns -Debug into Inquire, which would stop at every log line.
        if ($DebugPreference -eq 'Inquire' -and $PSBoundParameters.ContainsKey('Debug')) {
            $DebugPreference = 'Continue'
        }
    }

    process {
        $conflict = $null
        if ($Force -and $NoCache) {
            $conflict = '-Force and -NoCache cannot be used together: -Force replaces the cached session, -NoCache leaves the cache alone.'
        }
        elseif ($CachedOnly -and ($Force -or $NoCache -or $TokenCode)) {
            $conflict = '-CachedOnly cannot be used with -TokenCode, -Force or -NoCache: it only reads the session cache.'
        }

        if ($conflict) {
            $exception = [System.ArgumentException]::new($conflict)
            $PSCmdlet.ThrowTerminatingError([System.Management.Automation.ErrorRecord]::new(
                $exception, 'ConflictingCacheSwitches', 'InvalidArgument', $null))
        }

        $mfaSerial = $SerialNumber
        $awsProfile = $ProfileName
        $awsRegion = $Region
        if ($null -ne $Session) {
            if (-not $mfaSerial) { $mfaSerial = $Session.SerialNumber }
            if (-not $awsRegion) { $awsRegion = $Session.Region }

            # A profile named in the request is the library's only source of credentials, so the
            # profile that the environment selects anyway is left out: keys in AWS_ACCESS_KEY_ID
            # and AWS_SECRET_ACCESS_KEY then still count, as they did for the first session.
            # The AWS SDK for Rust reads AWS_PROFILE only, not the AWS CLI's AWS_DEFAULT_PROFILE.
            $selectedProfile = 'default'
            if ($env:AWS_PROFILE) { $selectedProfile = $env:AWS_PROFILE }
            if (-not $awsProfile -and $Session.ProfileName -and $Session.ProfileName -ne $selectedProfile) {
                $awsProfile = $Session.ProfileName
            }
        }

        $cache = @{ mode = 'use'; minRemainingSeconds = $MinimumRemainingSeconds }
        if ($CachedOnly) {
            $cache.mode = 'only'
        }
        elseif ($NoCache) {
            $cache.mode = 'off'
        }
        elseif ($Force) {
            $cache.mode = 'refresh'
        }

        if ($CachePath) {
            $cache.dir = Resolve-EcrFileSystemPath -Path $CachePath -Cmdlet $PSCmdlet
        }

        $request = @{ cache = $cache }
        if ($mfaSerial) {
            $request.serialNumber = $mfaSerial
        }

        if ($TokenCode) {
            $request.tokenCode = $TokenCode
        }

        # Unless given, the library takes duration_seconds of the profile, then 43200.
        if ($PSBoundParameters.ContainsKey('DurationInSeconds')) {
            $request.durationSeconds = $DurationInSeconds
        }

        $aws = New-EcrAwsOptions -ProfileName $awsProfile -Region $awsRegion -EndpointUrl $EndpointUrl
        if ($aws.Count -gt 0) {
            $request.aws = $aws
        }

        # STS rejects GetSessionToken with session credentials, so while an exported session is in
        # the environment, the call gets the long-term credentials that the export replaced.
        $credentialNames = 'AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN'
        $exported = Get-EcrSessionEnvironment
        if ($null -ne $exported) {
            Write-Debug 'Calling STS with the credentials from before Get-EcrMfaSession -SetEnvironment.'
            $longTerm = @{}
            foreach ($name in $credentialNames) { $longTerm[$name] = $exported.Saved[$name] }
            Set-EcrEnvironmentVariable -Values $longTerm -WhatIf:$false -Confirm:$false
        }

        try {
            # Without a code, the library returns a cached session or fails with MissingTokenCode,
            # and then the code is asked for.
            $askable = @()
            if (-not $TokenCode -and -not $CachedOnly) {
                $askable = @('MissingTokenCode')
            }

            $result = Invoke-EcrOperation -Operation token -Request $request -Cmdlet $PSCmdlet -ReturnErrorId $askable
            if ($result -is [System.Management.Automation.ErrorRecord]) {
                Write-Debug "The library needs an MFA code: $($result.Exception.Message)"
                $request.tokenCode = Read-EcrTokenCode -SerialNumber $mfaSerial -Cmdlet $PSCmdlet
                $result = Invoke-EcrOperation -Operation token -Request $request -Cmdlet $PSCmdlet
            }
        }
        finally {
            if ($null -ne $exported) {
                $sessionValues = @{}
                foreach ($name in $credentialNames) { $sessionValues[$name] = $exported.Exported[$name] }
                Set-EcrEnvironmentVariable -Values $sessionValues -WhatIf:$false -Confirm:$false
            }
        }

        $newSession = [EcrCompose.MfaSession]::new()
        $newSession.AccessKeyId = $result.accessKeyId
        $newSession.SecretAccessKey = $result.secretAccessKey
        $newSession.SessionToken = $result.sessionToken
        $newSession.Expiration = ConvertTo-EcrUtcDateTime -Value $result.expiration
        $newSession.SerialNumber = $result.serialNumber
        $newSession.AccountId = $result.accountId
        $newSession.ProfileName = $result.profile
        $newSession.Region = $result.region
        $newSession.FromCache = [bool] $result.fromCache
        $source = if ($newSession.FromCache) { 'the session cache' } else { 'STS' }
        Write-Verbose "Got an MFA session of account $($newSession.AccountId) from $source; it expires at $($newSession.Expiration.ToString('u'))."

        if ($SetEnvironment) {
            Export-EcrSessionEnvironment -Session $newSession -WhatIf:$false -Confirm:$false
        }

        $newSession
    }
}
