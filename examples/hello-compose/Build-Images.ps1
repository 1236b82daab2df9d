<#
.SYNOPSIS
Builds the images of the hello-compose example with a docker engine.

.DESCRIPTION
Builds the web and api images with the names that compose.yaml gives them for this registry,
using the legacy builder (DOCKER_BUILDKIT=0) so that no BuildKit or buildx is needed. The
images are FROM scratch and copy one text file each, so nothing is pulled.

.PARAMETER Registry
The registry host in the image names, the value of REGISTRY for compose.yaml.

.PARAMETER DockerHost
The docker engine, such as unix:///tmp/engine/docker.sock. Defaults to DOCKER_HOST.

.EXAMPLE
./Build-Images.ps1 -Registry 127.0.0.1:5000 -DockerHost unix:///tmp/engine/docker.sock
#>
[CmdletBinding()]
param(
    [string] $Registry = '123456789012.dkr.ecr.us-east-1.amazonaws.com',

    [string] $DockerHost = $env:DOCKER_HOST
)

$ErrorActionPreference = 'Stop'
if (-not $DockerHost) {
    throw 'No docker engine given: pass -DockerHost or set DOCKER_HOST.'
}

$previousHost = $env:DOCKER_HOST
$previousBuildKit = $env:DOCKER_BUILDKIT
$env:DOCKER_HOST = $DockerHost
$env:DOCKER_BUILDKIT = '0'
try {
    foreach ($service in 'web', 'api') {
        $image = "$Registry/hello/${service}:1.0"
        $context = Join-Path $PSScriptRoot $service
        $output = & docker build --quiet --tag $image $context 2>&1
        if ($LASTEXITCODE -ne 0) {
            throw "docker build of $image failed (exit code $LASTEXITCODE): $($output -join [Environment]::NewLine)"
        }

        Write-Verbose "Built $image ($output)."
        $image
    }
}
finally {
    $env:DOCKER_HOST = $previousHost
    $env:DOCKER_BUILDKIT = $previousBuildKit
}
