function New-EcrDockerOptions {
    <#
    .SYNOPSIS
    Builds the docker object of a request; only the values that were given are sent.

    .DESCRIPTION
    The library falls back to DOCKER_HOST and DOCKER_CONFIG for the others. A relative
    DockerConfigPath is resolved against the PowerShell location.
    #>
    [CmdletBinding()]
    [OutputType([hashtable])]
    param(
        [AllowEmptyString()]
        [string] $DockerHost,

        [AllowEmptyString()]
        [string] $DockerConfigPath,

        [Parameter(Mandatory)]
        [System.Management.Automation.PSCmdlet] $Cmdlet
    )

    $docker = @{}
    if ($DockerHost) {
        $docker.host = $DockerHost
    }

    if ($DockerConfigPath) {
        $docker.configDir = Resolve-EcrFileSystemPath -Path $DockerConfigPath -Cmdlet $Cmdlet
    }

    return $docker
}
