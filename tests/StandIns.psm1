# Local stand-ins for the Pester tests: moto behind the STS gate, Debian's docker-registry
# and a private dockerd, all started by tests/stand-ins/standins.py on 127.0.0.1 only.
#
#   Import-Module ./tests/StandIns.psm1
#   $standIns = Start-StandIns -State $TestDrive/standins -Services sts, registry
#   $saved = Use-StandInEnvironment -StandIns $standIns
#   ...
#   Restore-StandInEnvironment -Saved $saved
#   Stop-StandIns -State $TestDrive/standins

Set-StrictMode -Version 3.0

$script:StandInsScript = Join-Path $PSScriptRoot 'stand-ins/standins.py'

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


Export-ModuleMember -Function Start-StandIns, Stop-StandIns, Get-StandInStats, Reset-StandInStats,
    Set-StandInFault, Clear-StandInFault, Use-StandInEnvironment, Restore-StandInEnvironment
