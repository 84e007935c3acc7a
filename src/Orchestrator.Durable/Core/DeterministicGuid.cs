using System.Security.Cryptography;
using System.Text;

namespace Orchestrator.Durable.Core;

/// <summary>Name-based (RFC 4122 version 5 style) GUIDs: the same name always gives the same GUID.</summary>
internal static class DeterministicGuid
{
    private static readonly byte[] NamespaceBytes = new Guid("9e952958-5e33-4daf-827f-2fa12937b875").ToByteArray();

    public static Guid Create(string name)
    {
        byte[] nameBytes = Encoding.UTF8.GetBytes(name);
        byte[] data = new byte[NamespaceBytes.Length + nameBytes.Length];
        NamespaceBytes.CopyTo(data, 0);
        nameBytes.CopyTo(data, NamespaceBytes.Length);
#pragma warning disable CA5350 // SHA-1 is what RFC 4122 v5 specifies; this is naming, not security.
        byte[] hash = SHA1.HashData(data);
#pragma warning restore CA5350
        byte[] g = new byte[16];
        Array.Copy(hash, g, 16);
        g[6] = (byte)((g[6] & 0x0F) | 0x50);
        g[8] = (byte)((g[8] & 0x3F) | 0x80);
        return new Guid(g);
    }
}
