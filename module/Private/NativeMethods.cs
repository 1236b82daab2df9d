// Interop with the EcrCompose native library, and the types the module returns.
//
// This file is compiled by Add-Type on PowerShell 7 (.NET) and on Windows
// PowerShell 5.1 (.NET Framework), and reaches NativeLibrary through
// reflection because .NET Framework lacks it.
//
// NOTE: Add-Type of Windows PowerShell 5.1 compiles with the CodeDom C# compiler
// of .NET Framework 4.x, which accepts C# 5 and nothing newer. So this file has
// no ?. or ?[], no $"..." strings, no nameof, no => members, no property
// initializers, no "out var", no pattern matching, no tuples and no local
// functions. tests/Compatibility.Tests.ps1 compiles it as C# 5 to check.
//
// Strings cross as NUL-terminated UTF-8: a byte[] goes in, an IntPtr comes
// back, and the library's ecr_string_free releases it in a finally block.
// Default string marshalling is ANSI on Windows, so no string parameter is
// left to the marshaller.

using System;
using System.Collections.Generic;
using System.Globalization;
using System.Reflection;
using System.Runtime.InteropServices;
using System.Text;

namespace EcrCompose
{
    /// <summary>A temporary AWS session from STS GetSessionToken, obtained with an MFA code.</summary>
    /// <remarks>ToString() leaves out the secret access key and the session token.</remarks>
    public sealed class MfaSession
    {
        public string AccessKeyId { get; set; }
        public string SecretAccessKey { get; set; }
        public string SessionToken { get; set; }
        public DateTime Expiration { get; set; }
        public string SerialNumber { get; set; }
        public string AccountId { get; set; }
        public string ProfileName { get; set; }
        public string Region { get; set; }

        /// <summary>True when the session came from the session cache instead of STS.</summary>
        public bool FromCache { get; set; }

        /// <summary>Time until Expiration, computed on each read, and zero once the session has expired.</summary>
        public TimeSpan TimeLeft
        {
            get
            {
                if (Expiration == DateTime.MinValue)
                {
                    return TimeSpan.Zero;
                }

                TimeSpan left = Expiration.ToUniversalTime() - DateTime.UtcNow;
                return left > TimeSpan.Zero ? left : TimeSpan.Zero;
            }
        }

        public override string ToString()
        {
            return string.Format(
                CultureInfo.InvariantCulture,
                "MFA session of account {0} ({1}), expires {2:yyyy-MM-dd HH:mm:ss}Z",
                AccountId,
                SerialNumber,
                Expiration.ToUniversalTime());
        }
    }

    /// <summary>Counts of one push, written to the information stream when the push ends.</summary>
    /// <remarks>ToString() is the line that -InformationAction Continue shows.</remarks>
    public sealed class PushSummary
    {
        public int Pushed { get; set; }
        public int Skipped { get; set; }
        public int Failed { get; set; }
        public long BytesUploaded { get; set; }
        public TimeSpan Duration { get; set; }

        public override string ToString()
        {
            return string.Format(
                CultureInfo.InvariantCulture,
                "Pushed {0} {1}, skipped {2}, failed {3}; uploaded {4} in {5:0.0} s.",
                Pushed,
                Pushed == 1 ? "image" : "images",
                Skipped,
                Failed,
                FormatBytes(BytesUploaded),
                Duration.TotalSeconds);
        }

        /// <summary>Formats a byte count with binary prefixes, such as "1.5 MiB" or "512 bytes".</summary>
        public static string FormatBytes(long bytes)
        {
            string[] units = new string[] { "KiB", "MiB", "GiB", "TiB" };
            if (bytes < 1024)
            {
                return string.Format(CultureInfo.InvariantCulture, "{0} {1}", bytes, bytes == 1 ? "byte" : "bytes");
            }

            double value = bytes;
            int unit = -1;
            while (value >= 1024 && unit < units.Length - 1)
            {
                value /= 1024;
                unit++;
            }

            return string.Format(CultureInfo.InvariantCulture, "{0:0.0} {1}", value, units[unit]);
        }
    }

    /// <summary>An error that the native library returned, with its status and stable error id.</summary>
    public class EcrException : Exception
    {
        public EcrException(string status, string errorId, string message, string serviceCode, string target)
            : base(message)
        {
            Status = status;
            ErrorId = errorId;
            ServiceCode = serviceCode;
            Target = target;
        }

        /// <summary>Name of the EcrStatus value, for example "Authentication".</summary>
        public string Status { get; private set; }

        /// <summary>Stable identifier such as "MfaCodeRejected".</summary>
        public string ErrorId { get; private set; }

        /// <summary>Error code returned by AWS or the registry, or null.</summary>
        public string ServiceCode { get; private set; }

        /// <summary>The value or name that the error is about, or null.</summary>
        public string Target { get; private set; }
    }
}

namespace EcrCompose.Native
{
    /// <summary>Status and response document of one call into the library.</summary>
    public sealed class NativeResult
    {
        public NativeResult(int status, string json)
        {
            Status = status;
            Json = json;
        }

        /// <summary>EcrStatus value returned by the call (11 = pending).</summary>
        public int Status { get; private set; }

        /// <summary>Response JSON written by the library, or null when it wrote none.</summary>
        public string Json { get; private set; }
    }

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate uint AbiVersionFunction();

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate int OperationStartFunction(
        byte[] operation, byte[] requestJson, IntPtr callback, IntPtr context, out IntPtr operationOut);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate int OperationPollFunction(IntPtr operation, uint waitMilliseconds, out IntPtr responseJson);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate int OperationCancelFunction(IntPtr operation);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void OperationFreeFunction(IntPtr operation);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate void StringFreeFunction(IntPtr value);

    [UnmanagedFunctionPointer(CallingConvention.Cdecl)]
    internal delegate IntPtr LastErrorFunction();

    internal static class Kernel32
    {
        // Makes Windows look for the library's own dependencies next to it.
        internal const uint LoadWithAlteredSearchPath = 0x00000008;

        [DllImport("kernel32", CharSet = CharSet.Unicode, SetLastError = true)]
        internal static extern IntPtr LoadLibraryExW(string fileName, IntPtr reserved, uint flags);

        // GetProcAddress exists only with ANSI names; export names are ASCII.
        [DllImport("kernel32", CharSet = CharSet.Ansi, SetLastError = true, BestFitMapping = false)]
        internal static extern IntPtr GetProcAddress(IntPtr module, string procName);
    }

    /// <summary>Copies the .NET environment into the C runtime's environment, which the native library reads.</summary>
    /// <remarks>
    /// On Linux and macOS, .NET keeps Environment.SetEnvironmentVariable, and so $env:NAME = ..., in a
    /// managed copy and never calls setenv, so getenv in native code still returns the values the
    /// process started with. On Windows both read the same environment block and nothing is copied.
    /// setenv is not safe while another thread reads the environment, so the module calls this only
    /// while none of its operations runs. An empty value counts as unset, as it does for $env: in
    /// PowerShell, because AWS code takes an empty AWS_ENDPOINT_URL_STS for an endpoint.
    /// NOTE: commands run in parallel runspaces of one process (ForEach-Object -Parallel) can still
    /// change a variable while another runspace's operation reads the environment. setenv is only
    /// called for values that changed, so repeated runs with the same variables are not affected.
    /// </remarks>
    public static class NativeEnvironment
    {
        private static readonly object SyncLock = new object();

        // Names copied before, so that their later removal in .NET is copied too.
        private static readonly HashSet<string> KnownNames = new HashSet<string>(StringComparer.Ordinal);

        [DllImport("libc", EntryPoint = "getenv")]
        private static extern IntPtr GetEnv(byte[] name);

        [DllImport("libc", EntryPoint = "setenv")]
        private static extern int SetEnv(byte[] name, byte[] value, int overwrite);

        [DllImport("libc", EntryPoint = "unsetenv")]
        private static extern int UnsetEnv(byte[] name);

        /// <summary>Sets and unsets native variables until they match the .NET environment.</summary>
        /// <param name="alsoRemove">Names to unset natively when .NET does not have them, even if never copied.</param>
        /// <returns>The number of variables set or unset; 0 on Windows.</returns>
        public static int Synchronize(string[] alsoRemove)
        {
            if (Environment.OSVersion.Platform != PlatformID.Unix)
            {
                return 0;
            }

            lock (SyncLock)
            {
                int changes = 0;
                System.Collections.IDictionary managed = Environment.GetEnvironmentVariables();
                foreach (System.Collections.DictionaryEntry entry in managed)
                {
                    string name = (string)entry.Key;
                    string value = (string)entry.Value;
                    if (string.IsNullOrEmpty(value) || name.Length == 0 || name.IndexOf('=') >= 0 ||
                        name.IndexOf('\0') >= 0 || value.IndexOf('\0') >= 0)
                    {
                        continue;
                    }

                    KnownNames.Add(name);
                    if (!string.Equals(ReadNative(name), value, StringComparison.Ordinal))
                    {
                        SetEnv(Utf8(name), Utf8(value), 1);
                        changes++;
                    }
                }

                List<string> candidates = new List<string>(KnownNames);
                if (alsoRemove != null)
                {
                    candidates.AddRange(alsoRemove);
                }

                foreach (string name in candidates)
                {
                    if (string.IsNullOrEmpty(managed[name] as string) && ReadNative(name) != null)
                    {
                        UnsetEnv(Utf8(name));
                        changes++;
                    }
                }

                return changes;
            }
        }

        private static string ReadNative(string name)
        {
            IntPtr value = GetEnv(Utf8(name));
            if (value == IntPtr.Zero)
            {
                return null;
            }

            // The string belongs to the C runtime: copy it, never free it.
            int length = 0;
            while (Marshal.ReadByte(value, length) != 0)
            {
                length++;
            }

            byte[] bytes = new byte[length];
            Marshal.Copy(value, bytes, 0, length);
            return Encoding.UTF8.GetString(bytes);
        }

        private static byte[] Utf8(string value)
        {
            return Encoding.UTF8.GetBytes(value + "\0");
        }
    }

    /// <summary>The native library, loaded once per path and never unloaded.</summary>
    public sealed class EcrLibrary
    {
        /// <summary>ABI version this module was written for.</summary>
        public const uint ExpectedAbiVersion = 1;

        /// <summary>EcrStatus value of a poll whose operation still runs.</summary>
        public const int StatusPending = 11;

        private static readonly object LoadLock = new object();
        private static readonly Dictionary<string, EcrLibrary> LoadedLibraries =
            new Dictionary<string, EcrLibrary>(StringComparer.Ordinal);

        private readonly OperationStartFunction operationStart;
        private readonly OperationPollFunction operationPoll;
        private readonly OperationCancelFunction operationCancel;
        private readonly OperationFreeFunction operationFree;
        private readonly StringFreeFunction stringFree;
        private readonly LastErrorFunction lastError;

        private EcrLibrary(string path, IntPtr handle)
        {
            Path = path;
            AbiVersionFunction abiVersion = Bind<AbiVersionFunction>(handle, "ecr_abi_version");
            AbiVersion = abiVersion();
            if (AbiVersion != ExpectedAbiVersion)
            {
                throw new InvalidOperationException(string.Format(
                    CultureInfo.InvariantCulture,
                    "The EcrCompose library '{0}' implements ABI version {1}, but this module requires version {2}. " +
                    "Install the module and the library from the same release.",
                    path,
                    AbiVersion,
                    ExpectedAbiVersion));
            }

            operationStart = Bind<OperationStartFunction>(handle, "ecr_operation_start");
            operationPoll = Bind<OperationPollFunction>(handle, "ecr_operation_poll");
            operationCancel = Bind<OperationCancelFunction>(handle, "ecr_operation_cancel");
            operationFree = Bind<OperationFreeFunction>(handle, "ecr_operation_free");
            stringFree = Bind<StringFreeFunction>(handle, "ecr_string_free");
            lastError = Bind<LastErrorFunction>(handle, "ecr_last_error");
        }

        /// <summary>Absolute path the library was loaded from.</summary>
        public string Path { get; private set; }

        /// <summary>Value of ecr_abi_version() in the loaded library.</summary>
        public uint AbiVersion { get; private set; }

        /// <summary>Loads the library at an absolute path, or returns the copy already loaded from it.</summary>
        /// <exception cref="InvalidOperationException">The file is missing, cannot be loaded, or implements another ABI version.</exception>
        public static EcrLibrary Load(string path)
        {
            lock (LoadLock)
            {
                EcrLibrary library;
                if (LoadedLibraries.TryGetValue(path, out library))
                {
                    return library;
                }

                library = new EcrLibrary(path, LoadNative(path));
                LoadedLibraries.Add(path, library);
                return library;
            }
        }

        /// <summary>Starts "token", "login" or "push" without a callback; the caller polls for events.</summary>
        /// <exception cref="EcrStartException">The library did not start the operation.</exception>
        public EcrOperation Start(string operation, string requestJson)
        {
            IntPtr handle;
            int status = operationStart(ToUtf8(operation), ToUtf8(requestJson), IntPtr.Zero, IntPtr.Zero, out handle);
            if (status != 0 || handle == IntPtr.Zero)
            {
                throw new EcrStartException(status, TakeLastError());
            }

            return new EcrOperation(this, handle);
        }

        /// <summary>Returns the error JSON of the last failed call on this thread, or null.</summary>
        public string TakeLastError()
        {
            return TakeString(lastError());
        }

        internal NativeResult Poll(IntPtr operation, uint waitMilliseconds)
        {
            IntPtr response;
            int status = operationPoll(operation, waitMilliseconds, out response);
            string json = TakeString(response);
            if (json == null)
            {
                json = TakeLastError();
            }

            return new NativeResult(status, json);
        }

        internal int Cancel(IntPtr operation)
        {
            return operationCancel(operation);
        }

        internal void Free(IntPtr operation)
        {
            operationFree(operation);
        }

        // Copies a library-owned string and frees it, even when decoding fails.
        private string TakeString(IntPtr value)
        {
            if (value == IntPtr.Zero)
            {
                return null;
            }

            try
            {
                int length = 0;
                while (Marshal.ReadByte(value, length) != 0)
                {
                    length++;
                }

                byte[] bytes = new byte[length];
                Marshal.Copy(value, bytes, 0, length);
                return Encoding.UTF8.GetString(bytes);
            }
            finally
            {
                stringFree(value);
            }
        }

        private static byte[] ToUtf8(string value)
        {
            byte[] encoded = Encoding.UTF8.GetBytes(value);
            byte[] terminated = new byte[encoded.Length + 1];
            Buffer.BlockCopy(encoded, 0, terminated, 0, encoded.Length);
            return terminated;
        }

        private static IntPtr LoadNative(string path)
        {
            if (!System.IO.File.Exists(path))
            {
                throw new InvalidOperationException(string.Format(
                    CultureInfo.InvariantCulture,
                    "The EcrCompose library was not found at '{0}'. Reinstall the module, or set ECR_COMPOSE_LIBRARY " +
                    "to the absolute path of a library built with 'cargo build --release'.",
                    path));
            }

            Type nativeLibrary = typeof(Marshal).Assembly.GetType("System.Runtime.InteropServices.NativeLibrary");
            if (nativeLibrary != null)
            {
                MethodInfo load = nativeLibrary.GetMethod("Load", new Type[] { typeof(string) });
                try
                {
                    return (IntPtr)load.Invoke(null, new object[] { path });
                }
                catch (TargetInvocationException error)
                {
                    throw new InvalidOperationException(string.Format(
                        CultureInfo.InvariantCulture,
                        "The EcrCompose library '{0}' could not be loaded: {1}",
                        path,
                        error.InnerException.Message));
                }
            }

            // Windows PowerShell 5.1 runs on .NET Framework, which has no NativeLibrary.
            IntPtr handle = Kernel32.LoadLibraryExW(path, IntPtr.Zero, Kernel32.LoadWithAlteredSearchPath);
            if (handle == IntPtr.Zero)
            {
                throw new InvalidOperationException(string.Format(
                    CultureInfo.InvariantCulture,
                    "The EcrCompose library '{0}' could not be loaded: Windows error {1}. " +
                    "Check that it is built for this CPU ({2}-bit process).",
                    path,
                    Marshal.GetLastWin32Error(),
                    IntPtr.Size * 8));
            }

            return handle;
        }

        private static T Bind<T>(IntPtr handle, string name) where T : class
        {
            IntPtr address = FindExport(handle, name);
            if (address == IntPtr.Zero)
            {
                throw new InvalidOperationException(string.Format(
                    CultureInfo.InvariantCulture,
                    "The loaded library has no function '{0}', so it is not an EcrCompose library of ABI version {1}.",
                    name,
                    ExpectedAbiVersion));
            }

            return Marshal.GetDelegateForFunctionPointer(address, typeof(T)) as T;
        }

        private static IntPtr FindExport(IntPtr handle, string name)
        {
            Type nativeLibrary = typeof(Marshal).Assembly.GetType("System.Runtime.InteropServices.NativeLibrary");
            if (nativeLibrary == null)
            {
                return Kernel32.GetProcAddress(handle, name);
            }

            MethodInfo tryGetExport = nativeLibrary.GetMethod(
                "TryGetExport",
                new Type[] { typeof(IntPtr), typeof(string), typeof(IntPtr).MakeByRefType() });
            object[] arguments = new object[] { handle, name, IntPtr.Zero };
            bool found = (bool)tryGetExport.Invoke(null, arguments);
            return found ? (IntPtr)arguments[2] : IntPtr.Zero;
        }
    }

    /// <summary>A failed ecr_operation_start: its status and the error JSON of ecr_last_error, if any.</summary>
    public sealed class EcrStartException : Exception
    {
        public EcrStartException(int status, string errorJson)
            : base(string.Format(CultureInfo.InvariantCulture, "ecr_operation_start returned status {0}.", status))
        {
            Status = status;
            ErrorJson = errorJson;
        }

        public int Status { get; private set; }

        public string ErrorJson { get; private set; }
    }

    /// <summary>A running operation. Dispose frees the handle, which also cancels the operation if it still runs.</summary>
    public sealed class EcrOperation : IDisposable
    {
        private readonly EcrLibrary library;
        private IntPtr handle;

        internal EcrOperation(EcrLibrary library, IntPtr handle)
        {
            this.library = library;
            this.handle = handle;
        }

        /// <summary>Waits up to waitMilliseconds and returns the queued events, or the final response once done.</summary>
        public NativeResult Poll(uint waitMilliseconds)
        {
            ThrowIfDisposed();
            return library.Poll(handle, waitMilliseconds);
        }

        /// <summary>Asks the operation to stop; later polls return the Cancelled status once it has.</summary>
        public int Cancel()
        {
            ThrowIfDisposed();
            return library.Cancel(handle);
        }

        public void Dispose()
        {
            if (handle != IntPtr.Zero)
            {
                library.Free(handle);
                handle = IntPtr.Zero;
            }
        }

        private void ThrowIfDisposed()
        {
            if (handle == IntPtr.Zero)
            {
                throw new ObjectDisposedException("EcrOperation");
            }
        }
    }
}
