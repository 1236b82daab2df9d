# Tests of tests/StandIns.psm1 against the real stand-ins: start and stop, the control API and
# the process environment it sets.

BeforeAll {
    Import-Module (Join-Path (Split-Path -Parent $PSScriptRoot) 'StandIns.psm1') -Force
    $state = Join-Path ([System.IO.Path]::GetTempPath()) "standins-pester-$PID"
    $standIns = Start-StandIns -State $state -Services sts, registry
    $controlUnsigned = @{
        Uri                = $standIns.awsEndpoint
        Method             = 'Post'
        Body               = 'Action=GetCallerIdentity&Version=2011-06-15'
        ContentType        = 'application/x-www-form-urlencoded'
        NoProxy            = $true
        SkipHttpErrorCheck = $true
    }

    # A zombie keeps its /proc entry until reaped, so the state letter decides.
    function Test-ProcessRunning([int] $Id) {
        $stat = Get-Content -Path "/proc/$Id/stat" -Raw -ErrorAction SilentlyContinue
        if (-not $stat) { return $false }
        return -not $stat.Substring($stat.LastIndexOf(')') + 1).TrimStart().StartsWith('Z')
    }
}

AfterAll {
    Stop-StandIns -State $state
    Remove-Item -Path $state -Recurse -Force -ErrorAction SilentlyContinue
    Remove-Module StandIns -Force -ErrorAction SilentlyContinue
}

Describe 'Start-StandIns' {
    It 'returns the gate endpoint on loopback' {
        $standIns.awsEndpoint | Should -Match '^http://127\.0\.0\.1:\d+$'
    }

    It 'returns the registry password' {
        $standIns.registry.password | Should -Be "$($standIns.accountId)-auth-token"
    }

    It 'returns null for a service not started' {
        $standIns.engine | Should -BeNullOrEmpty
    }

    It 'records the sts pid' {
        Test-ProcessRunning -Id $standIns.pids.sts | Should -BeTrue
    }

    It 'rejects an unknown service' {
        { Start-StandIns -State $state -Services nothing } | Should -Throw -ErrorId 'ParameterArgumentValidationError,Start-StandIns'
    }

    It 'reports a failed start' {
        $python = $env:STANDINS_PYTHON
        $env:STANDINS_PYTHON = 'false'
        try {
            { Start-StandIns -State (Join-Path $state 'failed') -Services sts } | Should -Throw -ErrorId 'StandInsStartFailed,Start-StandIns'
        }
        finally {
            $env:STANDINS_PYTHON = $python
        }
    }
}

Describe 'Registry stand-in' {
    It 'rejects a request without password' {
        $response = Invoke-WebRequest -Uri "$($standIns.registry.url)/v2/" -NoProxy -SkipHttpErrorCheck
        $response.StatusCode | Should -Be 401
    }

    It 'accepts the ECR password' {
        $pair = "$($standIns.registry.username):$($standIns.registry.password)"
        $token = [Convert]::ToBase64String([System.Text.Encoding]::UTF8.GetBytes($pair))
        $response = Invoke-WebRequest -Uri "$($standIns.registry.url)/v2/" -NoProxy -SkipHttpErrorCheck `
            -Headers @{ Authorization = "Basic $token" }
        $response.StatusCode | Should -Be 200
    }
}

Describe 'Control API' {
    BeforeEach {
        Reset-StandInStats -StandIns $standIns
        Clear-StandInFault -StandIns $standIns
    }

    It 'counts an unsigned call' {
        $response = Invoke-WebRequest @controlUnsigned
        $response.StatusCode | Should -Be 403
        "$($response.Content)" | Should -Match '<Code>MissingAuthenticationToken</Code>'
        (Get-StandInStats -StandIns $standIns).GetCallerIdentity | Should -Be 1
    }

    It 'resets the counts' {
        $null = Invoke-WebRequest @controlUnsigned
        Reset-StandInStats -StandIns $standIns
        (Get-StandInStats -StandIns $standIns).Count | Should -Be 0
    }

    It 'defaults to the stand-ins started last' {
        $null = Invoke-WebRequest @controlUnsigned
        (Get-StandInStats).GetCallerIdentity | Should -Be 1
    }

    It 'injects a fault for count calls' {
        Set-StandInFault -StandIns $standIns -Action GetCallerIdentity -Status 400 -Code Throttling -Count 2
        $first = Invoke-WebRequest @controlUnsigned
        $second = Invoke-WebRequest @controlUnsigned
        $third = Invoke-WebRequest @controlUnsigned
        $first.StatusCode | Should -Be 400
        "$($first.Content)" | Should -Match '<Code>Throttling</Code>'
        "$($second.Content)" | Should -Match '<Code>Throttling</Code>'
        "$($third.Content)" | Should -Match '<Code>MissingAuthenticationToken</Code>'
    }

    It 'clears faults' {
        Set-StandInFault -StandIns $standIns -Action GetCallerIdentity -Code Throttling
        Clear-StandInFault -StandIns $standIns
        $response = Invoke-WebRequest @controlUnsigned
        "$($response.Content)" | Should -Match '<Code>MissingAuthenticationToken</Code>'
    }

    It 'rejects a control URL off loopback' {
        $elsewhere = [pscustomobject] @{ control = 'http://192.0.2.1:80/_standin' }
        { Get-StandInStats -StandIns $elsewhere } | Should -Throw -ErrorId 'StandInsControlNotLoopback,Get-StandInStats'
    }
}

Describe 'Use-StandInEnvironment' {
    BeforeAll {
        $env:AWS_PROFILE = 'someone'
        $saved = Use-StandInEnvironment -StandIns $standIns
        $during = @{
            Endpoint  = $env:AWS_ENDPOINT_URL
            Region    = $env:AWS_REGION
            Metadata  = $env:AWS_EC2_METADATA_DISABLED
            Config    = $env:AWS_CONFIG_FILE
            Docker    = $env:DOCKER_CONFIG
            Cache     = $env:XDG_CACHE_HOME
            Profile   = $env:AWS_PROFILE
            AccessKey = $env:AWS_ACCESS_KEY_ID
        }
        Restore-StandInEnvironment -Saved $saved
    }

    AfterAll {
        Remove-Item Env:AWS_PROFILE -ErrorAction SilentlyContinue
    }

    It 'sets the endpoint' {
        $during.Endpoint | Should -Be $standIns.awsEndpoint
    }

    It 'sets the region' {
        $during.Region | Should -Be 'us-east-1'
    }

    It 'disables instance metadata' {
        $during.Metadata | Should -Be 'true'
    }

    It 'points at an empty config file' {
        (Get-Item $during.Config).Length | Should -Be 0
    }

    It 'points DOCKER_CONFIG at the state directory' {
        $during.Docker | Should -BeLike "$state*"
    }

    It 'points XDG_CACHE_HOME at the state directory' {
        $during.Cache | Should -BeLike "$state*"
    }

    It 'removes AWS_PROFILE' {
        $during.Profile | Should -BeNullOrEmpty
    }

    It 'sets the base access key' {
        $during.AccessKey | Should -Be $standIns.accessKeyId
    }

    It 'saves the previous profile' {
        $saved['AWS_PROFILE'] | Should -Be 'someone'
    }

    It 'restores the previous profile' {
        $env:AWS_PROFILE | Should -Be 'someone'
    }
}

Describe 'Stop-StandIns' {
    It 'stops the services and can run twice' {
        $other = Join-Path $state 'second'
        $second = Start-StandIns -State $other -Services sts
        Stop-StandIns -State $other
        Test-ProcessRunning -Id $second.pids.sts | Should -BeFalse
        { Stop-StandIns -State $other -ErrorAction Stop } | Should -Not -Throw
    }
}
