# Loads the interop types once per process, dot-sources one function per file and registers
# tab completion.

$typeSource = Join-Path -Path $PSScriptRoot -ChildPath 'Private/NativeMethods.cs'

# Add-Type cannot replace a type that already exists, so Import-Module -Force reuses it.
if (-not ('EcrCompose.Native.EcrLibrary' -as [type])) {
    Add-Type -Path $typeSource
}

foreach ($folder in 'Private', 'Public') {
    $files = Get-ChildItem -Path (Join-Path -Path $PSScriptRoot -ChildPath $folder) -Filter '*.ps1' -File
    foreach ($file in $files) {
        . $file.FullName
    }
}

# The native library is loaded on first use by Get-EcrNativeLibrary.
$script:EcrLibrary = $null

Register-EcrArgumentCompleter
