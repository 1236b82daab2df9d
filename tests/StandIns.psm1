# Local stand-ins for the Pester tests: moto behind the STS gate, Debian's docker-registry
# and a private dockerd, all started by tests/stand-ins/standins.py on 127.0.0.1 only.
#
#   Import-Module ./tests/StandIns.psm1
#   $standIns = Start-StandIns -State $TestDrive/standins -Services sts, registry
#   $saved = Use-StandInEnvironment -StandIns $standIns
#   ...
#   Restore-StandInEnvironment -Saved $saved
#   Stop-StandIns -State $TestDrive/standins
#
# A test file of the module does all of that, and imports the module under test, with one call:
#
#   $context = New-StandInTestContext -Name push -Services sts, registry, engine -WithSession
#   ...
#   Remove-StandInTestContext -Context $context

Set-StrictMode -Version 3.0

$script:StandInsScript = Join-Path $PSScriptRoot 'stand-ins/standins.py'
$script:RepositoryRoot = Split-Path -Parent $PSScriptRoot

# The stand-ins that Start-StandIns returned last, used when a control command gets no -StandIns.
$script:Current = $null

# Variables that would steer AWS or Docker code away from the stand-ins. Use-StandInEnvironment
# removes them and saves their values.
$script:AmbientVariables = @(
    'AWS_PROFILE', 'AWS_DEFAULT_PROFILE', 'AWS_SESSION_TOKEN', 'AWS_DEFAULT_REGION',
    'AWS_ROLE_ARN', 'AWS_WEB_IDENTITY_TOKEN_FILE',
    'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI',
    'AWS_ENDPOINT_URL_STS', 'AWS_ENDPOINT_URL_ECR',
    'DOCKER_HOST', 'DOCKER_CONTEXT', 'DOCKER_TLS_VERIFY', 'DOCKER_CERT_PATH',
    'HTTP_PROXY', 'HTTPS_PROXY', 'http_proxy', 'https_proxy'
)


function Get-StandInsPython {
    if ($env:STANDINS_PYTHON) { return $env:STANDINS_PYTHON }
    return 'python3'
}


function New-StandInsError {
    param(
        [string] $Message,
        [string] $ErrorId,
        [System.Management.Automation.ErrorCategory] $Category,
        [object] $Target
    )

    $exception = [System.InvalidOperationException]::new($Message)
    return [System.Management.Automation.ErrorRecord]::new($exception, $ErrorId, $Category, $Target)
}


function Start-StandIns {
    <#
    .SYNOPSIS
    Starts the local stand-ins and returns their description.

    .DESCRIPTION
    Runs tests/stand-ins/standins.py start, which starts each service detached on a free
    127.0.0.1 port, waits until it answers and writes <State>/standins.json. Returns that JSON
    as an object with the properties awsEndpoint, region, accountId, accessKeyId,
    secretAccessKey, wrongTokenCode, serialNumber, control, registry (host, url, username,
    password, caFile), engine (host, runDir), stateDir, awsConfigFile,
    awsSharedCredentialsFile, dockerConfig, cacheDir, pids and logs. A service not started is $null.

    .PARAMETER State
    Directory for state, logs and standins.json. Created when missing. Pass the same path to
    Stop-StandIns.

    .PARAMETER Services
    Services to start: sts (moto behind the STS gate), registry (docker-registry with the ECR
    password) and engine (a private dockerd). All three by default.

    .PARAMETER RegistryTls
    Serves the registry over https with a certificate from a new test CA, whose PEM file is
    registry.caFile.

    .PARAMETER WrongTokenCode
    Six-digit MFA code that the STS gate rejects with AccessDenied. 999999 by default.

    .EXAMPLE
    $standIns = Start-StandIns -State (Join-Path $TestDrive 'standins') -Services sts, registry
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType([pscustomobject])]
    param(
        [Parameter(Mandatory)]
        [ValidateNotNullOrEmpty()]
        [string] $State,

        [ValidateSet('sts', 'registry', 'engine')]
        [string[]] $Services = @('sts', 'registry', 'engine'),

        [switch] $RegistryTls,

        [ValidatePattern('^\d{6}$')]
        [string] $WrongTokenCode = '999999'
    )

    $statePath = [System.IO.Path]::GetFullPath($State)
    if (-not $PSCmdlet.ShouldProcess($statePath, "Start stand-ins $($Services -join ',')")) {
        return
    }

    $null = New-Item -ItemType Directory -Path $statePath -Force
    $arguments = @(
        $script:StandInsScript, 'start', '--state', $statePath,
        '--services', ($Services -join ','), '--wrong-token-code', $WrongTokenCode
    )
    if ($RegistryTls) { $arguments += '--registry-tls' }

    $errorFile = Join-Path $statePath 'start.stderr'
    $output = & (Get-StandInsPython) @arguments 2> $errorFile
    $exitCode = $LASTEXITCODE
    if ($exitCode -ne 0) {
        $details = if (Test-Path $errorFile) { Get-Content -Path $errorFile -Raw } else { '' }
        $record = New-StandInsError -Message "Stand-ins did not start (exit code $exitCode): $details" `
            -ErrorId 'StandInsStartFailed' -Category NotInstalled -Target $statePath
        $PSCmdlet.ThrowTerminatingError($record)
    }

    $standIns = ($output -join "`n") | ConvertFrom-Json
    $standIns.PSObject.TypeNames.Insert(0, 'EcrCompose.Tests.StandIns')
    $script:Current = $standIns
    return $standIns
}


function Stop-StandIns {
    <#
    .SYNOPSIS
    Stops the stand-ins started with the same state directory.

    .DESCRIPTION
    Runs tests/stand-ins/standins.py stop, which sends SIGTERM to each recorded pid, then
    SIGKILL after a timeout, and unmounts what the engine left. Does nothing when nothing
    runs, so it is safe in an AfterAll block.

    .PARAMETER State
    The directory given to Start-StandIns.

    .EXAMPLE
    Stop-StandIns -State (Join-Path $TestDrive 'standins')
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param(
        [Parameter(Mandatory)]
        [ValidateNotNullOrEmpty()]
        [string] $State
    )

    $statePath = [System.IO.Path]::GetFullPath($State)
    if (-not $PSCmdlet.ShouldProcess($statePath, 'Stop stand-ins')) {
        return
    }

    $output = & (Get-StandInsPython) $script:StandInsScript 'stop' '--state' $statePath 2>&1
    $exitCode = $LASTEXITCODE
    foreach ($line in $output) { Write-Verbose "$line" }
    if ($exitCode -ne 0) {
        $record = New-StandInsError -Message "Stand-ins in '$statePath' did not stop (exit code $exitCode): $($output -join ' ')" `
            -ErrorId 'StandInsStopFailed' -Category InvalidResult -Target $statePath
        $PSCmdlet.WriteError($record)
    }

    if ($null -ne $script:Current -and $script:Current.stateDir -eq $statePath) {
        $script:Current = $null
    }
}


function Resolve-StandInsControl {
    param([object] $StandIns, [System.Management.Automation.PSCmdlet] $Caller)

    $target = if ($null -ne $StandIns) { $StandIns } else { $script:Current }
    if ($null -eq $target -or -not $target.control) {
        $record = New-StandInsError -Message 'No STS gate is running: pass -StandIns from Start-StandIns with the sts service.' `
            -ErrorId 'StandInsControlMissing' -Category ObjectNotFound -Target $StandIns
        $Caller.ThrowTerminatingError($record)
    }

    # The control API is only ever reached on loopback, whatever the object says.
    $uri = [uri] $target.control
    if ($uri.Host -ne '127.0.0.1') {
        $record = New-StandInsError -Message "Control URL '$($target.control)' is invalid: it must be on 127.0.0.1." `
            -ErrorId 'StandInsControlNotLoopback' -Category InvalidArgument -Target $target.control
        $Caller.ThrowTerminatingError($record)
    }
    return $target.control.TrimEnd('/')
}


function Invoke-StandInsControl {
    param(
        [string] $Control,
        [Microsoft.PowerShell.Commands.WebRequestMethod] $Method,
        [string] $Path,
        [object] $Body
    )

    $parameters = @{
        Uri        = "$Control$Path"
        Method     = $Method
        NoProxy    = $true
        TimeoutSec = 10
    }
    if ($null -ne $Body) {
        $parameters.Body = $Body | ConvertTo-Json -Compress
        $parameters.ContentType = 'application/json'
    }
    return Invoke-RestMethod @parameters
}


function Get-StandInStats {
    <#
    .SYNOPSIS
    Gets the number of requests the STS gate received per action.

    .DESCRIPTION
    Returns a hashtable from action name (GetSessionToken, GetAuthorizationToken, ...) to the
    number of requests since the start or the last Reset-StandInStats. Rejected requests and
    injected faults count too. An action never called is absent.

    .PARAMETER StandIns
    The object from Start-StandIns. Defaults to the stand-ins started last.

    .EXAMPLE
    (Get-StandInStats -StandIns $standIns).GetSessionToken | Should -Be 1
    #>
    [CmdletBinding()]
    [OutputType([hashtable])]
    param(
        [Parameter(ValueFromPipeline)]
        [object] $StandIns
    )

    process {
        $control = Resolve-StandInsControl -StandIns $StandIns -Caller $PSCmdlet
        $response = Invoke-StandInsControl -Control $control -Method Get -Path '/stats'
        $stats = @{}
        foreach ($property in $response.PSObject.Properties) {
            $stats[$property.Name] = [int] $property.Value
        }
        return $stats
    }
}


function Reset-StandInStats {
    <#
    .SYNOPSIS
    Sets every request count of the STS gate to zero.

    .PARAMETER StandIns
    The object from Start-StandIns. Defaults to the stand-ins started last.

    .EXAMPLE
    Reset-StandInStats -StandIns $standIns
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param(
        [Parameter(ValueFromPipeline)]
        [object] $StandIns
    )

    process {
        $control = Resolve-StandInsControl -StandIns $StandIns -Caller $PSCmdlet
        if ($PSCmdlet.ShouldProcess($control, 'Reset request counts')) {
            $null = Invoke-StandInsControl -Control $control -Method Post -Path '/reset'
        }
    }
}


function Set-StandInFault {
    <#
    .SYNOPSIS
    Makes the STS gate fail the next requests for an action with an AWS error.

    .DESCRIPTION
    The next Count requests for Action get HTTP Status with error Code, in the protocol of
    the request: awsQuery XML for STS, JSON with __type for ECR. Use it for throttling and
    retry tests. Faults add up, and Clear-StandInFault removes them all.

    .PARAMETER Action
    The API action, such as GetSessionToken or GetAuthorizationToken.

    .PARAMETER Status
    HTTP status of the error response, from 400 to 599. 400 by default.

    .PARAMETER Code
    AWS error code, such as Throttling (STS) or ThrottlingException (ECR).

    .PARAMETER Count
    Number of requests that fail before the action works again. 1 by default.

    .PARAMETER Message
    Error message. Defaults to "Rate exceeded" for throttling codes.

    .EXAMPLE
    Set-StandInFault -StandIns $standIns -Action GetSessionToken -Code Throttling -Count 3
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param(
        [object] $StandIns,

        [Parameter(Mandatory)]
        [ValidateNotNullOrEmpty()]
        [string] $Action,

        [ValidateRange(400, 599)]
        [int] $Status = 400,

        [Parameter(Mandatory)]
        [ValidateNotNullOrEmpty()]
        [string] $Code,

        [ValidateRange(1, [int]::MaxValue)]
        [int] $Count = 1,

        [string] $Message
    )

    $control = Resolve-StandInsControl -StandIns $StandIns -Caller $PSCmdlet
    $fault = @{ action = $Action; status = $Status; code = $Code; count = $Count }
    if ($Message) { $fault.message = $Message }
    if ($PSCmdlet.ShouldProcess($control, "Fail the next $Count $Action requests with $Status $Code")) {
        $null = Invoke-StandInsControl -Control $control -Method Post -Path '/faults' -Body $fault
    }
}


function Clear-StandInFault {
    <#
    .SYNOPSIS
    Removes every pending fault from the STS gate.

    .PARAMETER StandIns
    The object from Start-StandIns. Defaults to the stand-ins started last.

    .EXAMPLE
    Clear-StandInFault -StandIns $standIns
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param(
        [Parameter(ValueFromPipeline)]
        [object] $StandIns
    )

    process {
        $control = Resolve-StandInsControl -StandIns $StandIns -Caller $PSCmdlet
        if ($PSCmdlet.ShouldProcess($control, 'Clear faults')) {
            $null = Invoke-StandInsControl -Control $control -Method Delete -Path '/faults'
        }
    }
}


function Use-StandInEnvironment {
    <#
    .SYNOPSIS
    Points AWS and Docker code in this process at the stand-ins.

    .DESCRIPTION
    Sets AWS_ENDPOINT_URL (when sts runs), AWS_REGION, AWS_ACCESS_KEY_ID,
    AWS_SECRET_ACCESS_KEY, AWS_EC2_METADATA_DISABLED=true, AWS_CONFIG_FILE and
    AWS_SHARED_CREDENTIALS_FILE (empty files under the state directory), DOCKER_CONFIG and
    XDG_CACHE_HOME (directories under the state directory), DOCKER_HOST (when the engine runs)
    and NO_PROXY for loopback. Removes AWS_PROFILE, AWS_SESSION_TOKEN, proxies and other variables that would
    override them.

    Returns a hashtable of each changed variable and its previous value ($null when it was
    unset), for Restore-StandInEnvironment.

    .PARAMETER StandIns
    The object from Start-StandIns.

    .EXAMPLE
    $saved = Use-StandInEnvironment -StandIns $standIns
    try { Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode 123456 }
    finally { Restore-StandInEnvironment -Saved $saved }
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType([hashtable])]
    param(
        [Parameter(Mandatory, ValueFromPipeline)]
        [object] $StandIns
    )

    process {
        $values = [ordered] @{}
        foreach ($name in $script:AmbientVariables) { $values[$name] = $null }
        $values['AWS_REGION'] = $StandIns.region
        $values['AWS_ACCESS_KEY_ID'] = $StandIns.accessKeyId
        $values['AWS_SECRET_ACCESS_KEY'] = $StandIns.secretAccessKey
        $values['AWS_EC2_METADATA_DISABLED'] = 'true'
        $values['AWS_CONFIG_FILE'] = $StandIns.awsConfigFile
        $values['AWS_SHARED_CREDENTIALS_FILE'] = $StandIns.awsSharedCredentialsFile
        $values['DOCKER_CONFIG'] = $StandIns.dockerConfig
        $values['XDG_CACHE_HOME'] = $StandIns.cacheDir
        $values['NO_PROXY'] = '127.0.0.1,localhost'
        $values['no_proxy'] = '127.0.0.1,localhost'
        $values['AWS_ENDPOINT_URL'] = $StandIns.awsEndpoint
        if ($null -ne $StandIns.engine) {
            $values['DOCKER_HOST'] = $StandIns.engine.host
        }

        if (-not $PSCmdlet.ShouldProcess('process environment', "Set $($values.Count) variables for the stand-ins")) {
            return
        }

        $saved = @{}
        foreach ($name in $values.Keys) {
            $saved[$name] = [System.Environment]::GetEnvironmentVariable($name)
            [System.Environment]::SetEnvironmentVariable($name, $values[$name])
        }
        return $saved
    }
}


function Restore-StandInEnvironment {
    <#
    .SYNOPSIS
    Puts back the environment variables that Use-StandInEnvironment changed.

    .PARAMETER Saved
    The hashtable that Use-StandInEnvironment returned. A $null value removes the variable.

    .EXAMPLE
    Restore-StandInEnvironment -Saved $saved
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param(
        [Parameter(Mandatory, ValueFromPipeline)]
        [hashtable] $Saved
    )

    process {
        if ($PSCmdlet.ShouldProcess('process environment', "Restore $($Saved.Count) variables")) {
            foreach ($name in $Saved.Keys) {
                [System.Environment]::SetEnvironmentVariable($name, $Saved[$name])
            }
        }
    }
}


function Resolve-EcrComposeManifest {
    # ECR_COMPOSE_MODULE is the layout that build.ps1 writes to out/. Without it the source tree's
    # module/ loads the library that cargo built in target/release, unless ECR_COMPOSE_LIBRARY
    # names another one.
    if ($env:ECR_COMPOSE_MODULE) {
        return $env:ECR_COMPOSE_MODULE
    }

    if (-not $env:ECR_COMPOSE_LIBRARY) {
        $env:ECR_COMPOSE_LIBRARY = Join-Path $script:RepositoryRoot 'target/release/libecr_compose.so'
    }
    return Join-Path $script:RepositoryRoot 'module/EcrCompose.psd1'
}


function Import-EcrComposeUnderTest {
    <#
    .SYNOPSIS
    Imports the EcrCompose module under test and returns the path of its manifest.

    .DESCRIPTION
    Imports $env:ECR_COMPOSE_MODULE (the built layout) when it is set. Otherwise imports
    module/EcrCompose.psd1 of the source tree, and sets ECR_COMPOSE_LIBRARY to the library that
    cargo built in target/release when the variable is unset. The module is imported with -Force
    into the global scope, so that the test file sees its commands.

    .EXAMPLE
    $manifestPath = Import-EcrComposeUnderTest
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param()

    $manifestPath = Resolve-EcrComposeManifest
    Import-Module $manifestPath -Force -Global
    return $manifestPath
}


function New-StandInTestContext {
    <#
    .SYNOPSIS
    Starts the stand-ins for one test file and points the module under test at them.

    .DESCRIPTION
    Saves the process environment, imports the module under test with
    Import-EcrComposeUnderTest (unless -SkipImport), starts the stand-ins in a new state folder under the temporary
    folder, calls Use-StandInEnvironment and sets ECR_COMPOSE_CACHE_DIR to <state>/session-cache.

    Returns an object with these properties, each $null when its condition does not hold:

      ManifestPath           the module manifest under test
      State                  the state folder
      StandIns               the object from Start-StandIns
      EcrHost                the ECR host of the stand-in account and region
      RegistryHost           host:port of the registry, when it runs
      Aliases                a -RegistryAlias table from RegistryHost to EcrHost, when the registry runs
      RegistryAuthorization  the Basic Authorization header value of the registry, when it runs
      Project, ComposeFile   examples/hello-compose and its compose.yaml, with -BuildExample
      BuiltImages            the image names that Build-Images.ps1 returned, with -BuildExample
      Session                an MFA session, with -WithSession
      LongTermSecrets        New-SecretTable of the stand-ins
      Secrets                New-SecretTable of the stand-ins and Session
      SavedEnvironment       the process environment before the call

    When a step fails, it stops the stand-ins, removes the state folder, restores the environment
    and throws the error. Pass the object to Remove-StandInTestContext in AfterAll.

    .PARAMETER Name
    Short name of the test file in the state folder's name, ecr-compose-<Name>-<8 hex digits>.

    .PARAMETER Services
    Services to start, as for Start-StandIns.

    .PARAMETER BuildExample
    Sets REGISTRY to the registry host and builds the images of examples/hello-compose with the
    engine. Needs the registry and engine services.

    .PARAMETER WithSession
    Gets an MFA session with the token code 123456. Needs the sts service and the import.

    .PARAMETER SkipImport
    Returns the manifest path without importing the module, for a test file whose child
    processes import it.

    .EXAMPLE
    $context = New-StandInTestContext -Name login -Services sts, registry -WithSession
    #>
    [CmdletBinding(SupportsShouldProcess)]
    [OutputType([pscustomobject])]
    param(
        [Parameter(Mandatory)]
        [ValidatePattern('^[a-z0-9-]+$')]
        [string] $Name,

        [ValidateSet('sts', 'registry', 'engine')]
        [string[]] $Services = @('sts', 'registry', 'engine'),

        [switch] $BuildExample,

        [switch] $WithSession,

        [switch] $SkipImport
    )

    if ($BuildExample -and ($Services -notcontains 'registry' -or $Services -notcontains 'engine')) {
        $record = New-StandInsError -Message '-BuildExample is invalid without the registry and engine services: add them to -Services.' `
            -ErrorId 'StandInTestContextInvalid' -Category InvalidArgument -Target $Services
        $PSCmdlet.ThrowTerminatingError($record)
    }

    if ($WithSession -and ($Services -notcontains 'sts' -or $SkipImport)) {
        $record = New-StandInsError -Message '-WithSession is invalid without the sts service or with -SkipImport: add sts to -Services and drop -SkipImport.' `
            -ErrorId 'StandInTestContextInvalid' -Category InvalidArgument -Target $Services
        $PSCmdlet.ThrowTerminatingError($record)
    }

    $state = Join-Path ([System.IO.Path]::GetTempPath()) "ecr-compose-$Name-$([guid]::NewGuid().ToString('N').Substring(0, 8))"
    if (-not $PSCmdlet.ShouldProcess($state, "Start stand-ins $($Services -join ',') and set the environment")) {
        return
    }

    $context = [pscustomobject] @{
        PSTypeName            = 'EcrCompose.Tests.StandInTestContext'
        ManifestPath          = $null
        State                 = $state
        StandIns              = $null
        RegistryHost          = $null
        EcrHost               = $null
        Aliases               = $null
        RegistryAuthorization = $null
        Project               = $null
        ComposeFile           = $null
        BuiltImages           = $null
        Session               = $null
        LongTermSecrets       = $null
        Secrets               = $null
        SavedEnvironment      = [System.Environment]::GetEnvironmentVariables()
    }

    try {
        if ($SkipImport) {
            $context.ManifestPath = Resolve-EcrComposeManifest
        }
        else {
            $context.ManifestPath = Import-EcrComposeUnderTest
        }

        $standIns = Start-StandIns -State $state -Services $Services
        $context.StandIns = $standIns
        $null = Use-StandInEnvironment -StandIns $standIns
        $env:ECR_COMPOSE_CACHE_DIR = Join-Path $state 'session-cache'

        $context.EcrHost = "$($standIns.accountId).dkr.ecr.$($standIns.region).amazonaws.com"
        if ($null -ne $standIns.registry) {
            $registryHost = $standIns.registry.host
            $context.RegistryHost = $registryHost
            $context.Aliases = @{ $registryHost = $context.EcrHost }
            $context.RegistryAuthorization = 'Basic ' + [System.Convert]::ToBase64String(
                [System.Text.Encoding]::UTF8.GetBytes("$($standIns.registry.username):$($standIns.registry.password)"))
        }

        if ($BuildExample) {
            $context.Project = Join-Path $script:RepositoryRoot 'examples/hello-compose'
            $context.ComposeFile = Join-Path $context.Project 'compose.yaml'
            $env:REGISTRY = $context.RegistryHost
            $context.BuiltImages = @(& (Join-Path $context.Project 'Build-Images.ps1') -Registry $context.RegistryHost `
                    -DockerHost $standIns.engine.host)
        }

        if ($WithSession) {
            $context.Session = Get-EcrMfaSession -SerialNumber $standIns.serialNumber -TokenCode '123456'
        }

        $context.LongTermSecrets = New-SecretTable -StandIns $standIns
        $context.Secrets = New-SecretTable -StandIns $standIns -Session $context.Session
    }
    catch {
        Remove-StandInTestContext -Context $context -Confirm:$false
        throw
    }

    return $context
}


function Remove-StandInTestContext {
    <#
    .SYNOPSIS
    Stops the stand-ins of a test context, removes its state folder and restores the environment.

    .DESCRIPTION
    Undoes New-StandInTestContext and whatever the test file changed in the environment since:
    removes each variable that did not exist then and sets every other one back to its saved
    value. Does nothing for $null, so it is safe in an AfterAll block whose BeforeAll failed.

    .PARAMETER Context
    The object from New-StandInTestContext.

    .EXAMPLE
    Remove-StandInTestContext -Context $context
    #>
    [CmdletBinding(SupportsShouldProcess)]
    param(
        [Parameter(Mandatory)]
        [AllowNull()]
        [object] $Context
    )

    if ($null -eq $Context) {
        return
    }

    if (-not $PSCmdlet.ShouldProcess($Context.State, 'Stop stand-ins, remove the state folder and restore the environment')) {
        return
    }

    if ($null -ne $Context.StandIns) {
        Stop-StandIns -State $Context.State -Confirm:$false
    }

    if ($Context.State -and (Test-Path $Context.State)) {
        Remove-Item -Path $Context.State -Recurse -Force -ErrorAction SilentlyContinue
    }

    # Remove-Item unsets a variable; SetEnvironmentVariable($name, $null) would set it to ''.
    $saved = $Context.SavedEnvironment
    foreach ($name in @([System.Environment]::GetEnvironmentVariables().Keys)) {
        if (-not $saved.Contains($name)) {
            Remove-Item -Path "env:$name" -ErrorAction SilentlyContinue
        }
    }

    foreach ($name in $saved.Keys) {
        [System.Environment]::SetEnvironmentVariable($name, $saved[$name])
    }
}


function New-SecretTable {
    <#
    .SYNOPSIS
    Creates a table of the secret values that no output may contain, keyed by a readable name.

    .DESCRIPTION
    With -StandIns: the long-term secret access key and, when the registry runs, the ECR password
    and the docker auth value (base64 of <username>:<password>). With -Session: the session's
    secret access key and session token. Returns an ordered dictionary for Find-SecretName.

    .PARAMETER StandIns
    The object from Start-StandIns.

    .PARAMETER Session
    An EcrCompose.MfaSession.

    .EXAMPLE
    $secrets = New-SecretTable -StandIns $standIns -Session $session
    #>
    [CmdletBinding()]
    [OutputType([System.Collections.Specialized.OrderedDictionary])]
    param(
        [object] $StandIns,

        [object] $Session
    )

    $secrets = [ordered] @{}
    if ($null -ne $StandIns) {
        $secrets['the long-term secret access key'] = $StandIns.secretAccessKey
        if ($null -ne $StandIns.registry) {
            $secrets['the ECR password'] = $StandIns.registry.password
            $secrets['the docker auth value'] = [System.Convert]::ToBase64String(
                [System.Text.Encoding]::UTF8.GetBytes("$($StandIns.registry.username):$($StandIns.registry.password)"))
        }
    }

    if ($null -ne $Session) {
        $secrets['the session secret access key'] = $Session.SecretAccessKey
        $secrets['the session token'] = $Session.SessionToken
    }

    return $secrets
}


function Find-SecretName {
    <#
    .SYNOPSIS
    Returns the names of the secrets whose values occur in a text.

    .DESCRIPTION
    Writes the key of each entry of Secrets whose value occurs in Text, so that a failed test names
    the secret that leaked and never prints its value. Entries with an empty value are skipped.

    .PARAMETER Text
    The text to search, such as the output of ConvertTo-VisibleText.

    .PARAMETER Secrets
    A table from name to secret value, such as the output of New-SecretTable.

    .EXAMPLE
    Find-SecretName -Text (ConvertTo-VisibleText $records) -Secrets $secrets | Should -BeNullOrEmpty
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param(
        [string] $Text,

        [Parameter(Mandatory)]
        [System.Collections.IDictionary] $Secrets
    )

    foreach ($name in $Secrets.Keys) {
        $value = $Secrets[$name]
        if ($value -and $Text.Contains($value)) { $name }
    }
}


function ConvertTo-VisibleText {
    <#
    .SYNOPSIS
    Renders everything a user could see of captured records: views, messages and ToString().

    .DESCRIPTION
    Joins, for each record, its default view and its string form, and for an ErrorRecord also
    the exception message and every property in a list.

    .PARAMETER Records
    The records that a command wrote, such as the output of a call with *>&1.

    .EXAMPLE
    ConvertTo-VisibleText $records
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param(
        [object[]] $Records
    )

    $parts = foreach ($record in $Records) {
        $record | Out-String -Width 4096
        "$record"
        if ($record -is [System.Management.Automation.ErrorRecord]) {
            $record.Exception.Message
            $record | Format-List * -Force | Out-String -Width 4096
        }
    }

    $parts -join "`n"
}


function Get-PwshCommand {
    <#
    .SYNOPSIS
    Gets the program and leading arguments that start a child of this PowerShell.

    .DESCRIPTION
    Writes the executable of this process and, when PowerShell runs as a .NET tool inside the
    dotnet host, the path of pwsh.dll that the host needs as its first argument. Collect the
    output with @(): the first element is the program, and the rest go before the PowerShell
    arguments.

    .EXAMPLE
    $pwsh = @(Get-PwshCommand)
    $arguments = @($pwsh | Select-Object -Skip 1) + @('-NoProfile', '-Command', '$PSVersionTable')
    & $pwsh[0] @arguments
    #>
    [CmdletBinding()]
    [OutputType([string])]
    param()

    $program = (Get-Process -Id $PID).Path
    $program
    if ([System.IO.Path]::GetFileNameWithoutExtension($program) -notin 'pwsh', 'powershell') {
        Join-Path $PSHOME 'pwsh.dll'
    }
}


Export-ModuleMember -Function Start-StandIns, Stop-StandIns, Get-StandInStats, Reset-StandInStats,
    Set-StandInFault, Clear-StandInFault, Use-StandInEnvironment, Restore-StandInEnvironment,
    Import-EcrComposeUnderTest, New-StandInTestContext, Remove-StandInTestContext, New-SecretTable,
    Find-SecretName, ConvertTo-VisibleText, Get-PwshCommand
