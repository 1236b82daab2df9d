# Runs the Python self-test of the stand-ins (selftest.py), so the gate's STS checks, the
# registry and the engine are verified wherever Pester runs.

Describe 'Stand-ins self-test' {
    BeforeAll {
        $python = if ($env:STANDINS_PYTHON) { $env:STANDINS_PYTHON } else { 'python3' }
        $output = & $python (Join-Path $PSScriptRoot 'selftest.py') 2>&1 | ForEach-Object { "$_" }
        $exitCode = $LASTEXITCODE
        $summary = $output | Where-Object { $_ -match '^\d+ passed, \d+ failed' } | Select-Object -Last 1
        $report = ($output | Select-Object -Last 60) -join "`n"
    }

    It 'exits with status 0' {
        $exitCode | Should -Be 0 -Because $report
    }

    It 'reports no failed case' {
        $summary | Should -Match ', 0 failed' -Because $report
    }
}
