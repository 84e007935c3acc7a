using System.Globalization;
using System.Text;
using Microsoft.Data.Sqlite;
using Orchestrator.Agents;

namespace Orchestrator.Testing;

/// <summary>Reads every row of every table of every SQLite file in a folder, raw, looking for values that must not be stored.</summary>
internal static class SqliteStoreScan
{
    /// <summary>Rows read, whether a sealed value was seen (so the scan does see history), and where any secret was found.</summary>
    public static (int Rows, bool SealedSeen, List<string> Leaks) Scan(string folder, params string[] secrets) =>
        ScanFiles(Directory.GetFiles(folder, "*.db"), secrets);

    /// <summary>The same scan over the given SQLite files.</summary>
    public static (int Rows, bool SealedSeen, List<string> Leaks) ScanFiles(IEnumerable<string> files, params string[] secrets)
    {
        SqliteConnection.ClearAllPools();
        int rows = 0;
        bool sealedSeen = false;
        var leaks = new List<string>();
        foreach (string file in files)
        {
            using var connection = new SqliteConnection($"Data Source={file};Mode=ReadOnly;Pooling=False");
            connection.Open();
            var tables = new List<string>();
            using (SqliteCommand list = connection.CreateCommand())
            {
                list.CommandText = "SELECT name FROM sqlite_master WHERE type = 'table'";
                using SqliteDataReader reader = list.ExecuteReader();
                while (reader.Read())
                {
                    tables.Add(reader.GetString(0));
                }
            }

            foreach (string table in tables)
            {
                using SqliteCommand select = connection.CreateCommand();
                select.CommandText = $"SELECT * FROM \"{table}\"";
                using SqliteDataReader reader = select.ExecuteReader();
                while (reader.Read())
                {
                    rows++;
                    for (int i = 0; i < reader.FieldCount; i++)
                    {
                        string text = reader.IsDBNull(i) ? string.Empty
                            : reader.GetValue(i) is byte[] bytes ? Encoding.UTF8.GetString(bytes)
                            : Convert.ToString(reader.GetValue(i), CultureInfo.InvariantCulture) ?? string.Empty;
                        sealedSeen |= text.Contains(SensitiveValueProtector.Prefix, StringComparison.Ordinal);
                        foreach (string secret in secrets.Where(s => text.Contains(s, StringComparison.Ordinal)))
                        {
                            leaks.Add($"{Path.GetFileName(file)}:{table}.{reader.GetName(i)} holds {secret}");
                        }
                    }
                }
            }
        }

        return (rows, sealedSeen, leaks);
    }
}
