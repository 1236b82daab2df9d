# Tests that the module stays loadable by Windows PowerShell 5.1: no script syntax newer than 5.1,
# no PowerShell 7 parameters, files that 5.1 reads with the right encoding, and C# that the
# C# 5 compiler of 5.1's Add-Type accepts. They parse the source files and need no Windows.

BeforeDiscovery {
    $repositoryRoot = Split-Path -Parent $PSScriptRoot
    $moduleFiles = @(Get-ChildItem -Path (Join-Path $repositoryRoot 'module') -Recurse -File -Include '*.ps1', '*.psm1', '*.psd1' |
            ForEach-Object { @{ Name = $_.FullName.Substring($repositoryRoot.Length + 1).Replace('\', '/'); Path = $_.FullName } })
    $textFiles = @(Get-ChildItem -Path (Join-Path $repositoryRoot 'module') -Recurse -File |
            ForEach-Object { @{ Name = $_.FullName.Substring($repositoryRoot.Length + 1).Replace('\', '/'); Path = $_.FullName } })
}

BeforeAll {
    $repositoryRoot = Split-Path -Parent $PSScriptRoot
    $language = [System.Management.Automation.Language.TokenKind]

    # Returns a description of each construct in the file that Windows PowerShell 5.1 cannot parse.
    function Find-NewSyntax {
        param([string] $Path)

        $tokens = $null
        $errors = $null
        $ast = [System.Management.Automation.Language.Parser]::ParseFile($Path, [ref] $tokens, [ref] $errors)
        $nodes = $ast.FindAll({ $true }, $true)
        foreach ($node in $nodes) {
            $line = $node.Extent.StartLineNumber
            switch ($node.GetType().Name) {
                'TernaryExpressionAst' { "line ${line}: ternary operator a ? b : c" }
                'PipelineChainAst' { "line ${line}: pipeline chain && or ||" }
                'BinaryExpressionAst' {
                    if ($node.Operator -eq $language::QuestionQuestion) { "line ${line}: null-coalescing operator ??" }
                }
                'AssignmentStatementAst' {
                    if ($node.Operator -eq $language::QuestionQuestionEquals) { "line ${line}: null-coalescing assignment ??=" }
                }
                'MemberExpressionAst' {
                    if ($node.NullConditional) { "line ${line}: null-conditional member access ?." }
                }
                'InvokeMemberExpressionAst' {
                    if ($node.NullConditional) { "line ${line}: null-conditional method call ?." }
                }
                'IndexExpressionAst' {
                    if ($node.NullConditional) { "line ${line}: null-conditional index ?[]" }
                }
                'ScriptBlockAst' {
                    # CleanBlock exists from PowerShell 7.3 on.
                    if ($node.PSObject.Properties['CleanBlock'] -and $null -ne $node.CleanBlock) { "line ${line}: clean block" }
                }
            }
        }
    }

    # Parameters and commands that Windows PowerShell 5.1 lacks, found in the command calls of a file.
    $newParameters = @{
        'ConvertFrom-Json' = 'AsHashtable', 'Depth', 'NoEnumerate'
        'ConvertTo-Json' = 'EnumsAsStrings', 'AsArray', 'EscapeHandling'
        'Join-Path' = 'AdditionalChildPath'
        'Get-Content' = 'AsByteStream'
        'Set-Content' = 'AsByteStream'
        'Add-Content' = 'AsByteStream'
        'ForEach-Object' = 'Parallel', 'ThrottleLimit', 'AsJob'
        'Invoke-WebRequest' = 'SkipHttpErrorCheck', 'NoProxy', 'SslProtocol', 'Authentication', 'StatusCodeVariable'
        'Invoke-RestMethod' = 'SkipHttpErrorCheck', 'NoProxy', 'SslProtocol', 'Authentication', 'StatusCodeVariable'
        'Select-String' = 'Raw', 'NoEmphasis'
        'Test-Connection' = 'TcpPort'
        'Get-Date' = 'AsUTC'
    }
    $newCommands = 'Test-Json', 'Get-Error', 'Join-String', 'ConvertFrom-Markdown', 'Remove-Service', 'Get-Uptime', 'Start-ThreadJob'
    $newVariables = 'IsWindows', 'IsLinux', 'IsMacOS', 'IsCoreCLR'

    function Find-NewCommandUse {
        param([string] $Path)

        $tokens = $null
        $errors = $null
        $ast = [System.Management.Automation.Language.Parser]::ParseFile($Path, [ref] $tokens, [ref] $errors)
        foreach ($command in $ast.FindAll({ $args[0] -is [System.Management.Automation.Language.CommandAst] }, $true)) {
            $name = $command.GetCommandName()
            if (-not $name) { continue }
            if ($name -in $newCommands) {
                "line $($command.Extent.StartLineNumber): $name"
            }

            if ($newParameters.ContainsKey($name)) {
                foreach ($parameter in $command.CommandElements | Where-Object { $_ -is [System.Management.Automation.Language.CommandParameterAst] }) {
                    foreach ($newParameter in $newParameters[$name]) {
                        if ($newParameter.StartsWith($parameter.ParameterName, [System.StringComparison]::OrdinalIgnoreCase) -and
                            $parameter.ParameterName.Length -ge 3) {
                            "line $($command.Extent.StartLineNumber): $name -$newParameter"
                        }
                    }
                }
            }
        }

        foreach ($variable in $ast.FindAll({ $args[0] -is [System.Management.Automation.Language.VariableExpressionAst] }, $true)) {
            if ($variable.VariablePath.UserPath -in $newVariables) {
                "line $($variable.Extent.StartLineNumber): `$$($variable.VariablePath.UserPath)"
            }
        }
    }
}

Describe 'Windows PowerShell 5.1 syntax' {
    It '<Name> has no syntax newer than 5.1' -ForEach $moduleFiles {
        Find-NewSyntax -Path $Path | Should -BeNullOrEmpty
    }

    It '<Name> uses no PowerShell 7 commands, parameters or variables' -ForEach $moduleFiles {
        Find-NewCommandUse -Path $Path | Should -BeNullOrEmpty
    }

    Context 'the checks themselves' {
        BeforeAll {
            $sample = Join-Path ([System.IO.Path]::GetTempPath()) "ecr-compose-syntax-$([guid]::NewGuid().ToString('N').Substring(0, 8)).ps1"
        }

        AfterEach {
            Remove-Item -Path $sample -Force -ErrorAction SilentlyContinue
        }

        It 'find <Case>' -ForEach @(
            @{ Case = 'a ternary operator'; Code = '$a = $b ? 1 : 2' }
            @{ Case = 'a pipeline chain'; Code = 'Get-Item . && Get-Item ..' }
            @{ Case = 'a null-coalescing operator'; Code = '$a = $b ?? 1' }
            @{ Case = 'a null-coalescing assignment'; Code = '$a ??= 1' }
            @{ Case = 'a null-conditional member'; Code = '${a}?.Length' }
            @{ Case = 'a null-conditional method call'; Code = '${a}?.ToString()' }
            @{ Case = 'a null-conditional index'; Code = '${a}?[0]' }
            @{ Case = 'a clean block'; Code = 'function f { process { 1 } clean { 2 } }' }
        ) {
            Set-Content -Path $sample -Value $Code -Encoding ascii
            Find-NewSyntax -Path $sample | Should -Not -BeNullOrEmpty
        }

        It 'find <Case>' -ForEach @(
            @{ Case = 'ConvertFrom-Json -AsHashtable'; Code = '$x | ConvertFrom-Json -AsHashtable' }
            @{ Case = 'ForEach-Object -Parallel'; Code = '1..2 | ForEach-Object -Parallel { $_ }' }
            @{ Case = '$IsWindows'; Code = 'if ($IsWindows) { 1 }' }
        ) {
            Set-Content -Path $sample -Value $Code -Encoding ascii
            Find-NewCommandUse -Path $sample | Should -Not -BeNullOrEmpty
        }

        It 'pass 5.1 code' {
            Set-Content -Path $sample -Encoding ascii -Value 'function f { [CmdletBinding()] param() if ($null -eq $a) { $b = if ($c) { 1 } else { 2 } }; $d.Length; $e[0] }'
            Find-NewSyntax -Path $sample | Should -BeNullOrEmpty
        }
    }
}

Describe 'File encoding' {
    # Windows PowerShell 5.1 reads a script without a byte order mark in the ANSI code page.
    It '<Name> is ASCII or has a BOM' -ForEach $textFiles {
        $bytes = [System.IO.File]::ReadAllBytes($Path)
        $hasBom = $bytes.Length -ge 3 -and $bytes[0] -eq 0xEF -and $bytes[1] -eq 0xBB -and $bytes[2] -eq 0xBF
        $nonAscii = @($bytes -gt 0x7F).Count
        ($hasBom -or $nonAscii -eq 0) | Should -BeTrue -Because "$nonAscii bytes are not ASCII"
    }
}

Describe 'NativeMethods.cs' {
    BeforeAll {
        # Roslyn ships with PowerShell 7 for its own Add-Type.
        Add-Type -Path (Join-Path $PSHOME 'Microsoft.CodeAnalysis.dll'), (Join-Path $PSHOME 'Microsoft.CodeAnalysis.CSharp.dll')
        $csharp = 'Microsoft.CodeAnalysis.CSharp'

        # Compiles C# source as C# 5 against the reference assemblies of PowerShell and returns the errors.
        function Get-CSharp5Error {
            param([string] $Source)

            $options = New-Object "$csharp.CSharpParseOptions" -ArgumentList ([Microsoft.CodeAnalysis.CSharp.LanguageVersion]::CSharp5)
            $tree = [Microsoft.CodeAnalysis.CSharp.CSharpSyntaxTree]::ParseText($Source, $options)
            $references = [Microsoft.CodeAnalysis.MetadataReference[]] @(
                Get-ChildItem -Path (Join-Path $PSHOME 'ref') -Filter '*.dll' |
                    ForEach-Object { [Microsoft.CodeAnalysis.MetadataReference]::CreateFromFile($_.FullName) })
            $compilation = [Microsoft.CodeAnalysis.CSharp.CSharpCompilation]::Create(
                'EcrComposeCheck',
                [Microsoft.CodeAnalysis.SyntaxTree[]] @($tree),
                $references,
                (New-Object "$csharp.CSharpCompilationOptions" -ArgumentList ([Microsoft.CodeAnalysis.OutputKind]::DynamicallyLinkedLibrary)))
            @([System.Linq.Enumerable]::ToArray($compilation.GetDiagnostics()) |
                    Where-Object Severity -EQ ([Microsoft.CodeAnalysis.DiagnosticSeverity]::Error) |
                    ForEach-Object { $_.ToString() })
        }
    }

    It 'compiles as C# 5' {
        $source = Get-Content -Path (Join-Path $repositoryRoot 'module/Private/NativeMethods.cs') -Raw
        Get-CSharp5Error -Source $source | Should -BeNullOrEmpty
    }

    It 'says which C# version 5.1 accepts' {
        Get-Content -Path (Join-Path $repositoryRoot 'module/Private/NativeMethods.cs') -Raw | Should -Match 'C# 5'
    }

    It 'rejects <Case> as C# 5' -ForEach @(
        @{ Case = 'a null-conditional operator'; Code = 'class A { string B(string s) { return s?.Trim(); } }' }
        @{ Case = 'an interpolated string'; Code = 'class A { string B(int i) { return $"{i}"; } }' }
        @{ Case = 'an expression-bodied member'; Code = 'class A { int B => 1; }' }
        @{ Case = 'nameof'; Code = 'class A { string B() { return nameof(A); } }' }
    ) {
        Get-CSharp5Error -Source $Code | Should -Not -BeNullOrEmpty
    }
}
