using WebDefense.Client.Api;

namespace WebDefense.Client;

/// <summary>Who is signed in (from GET /api/auth/me), shared by the layout and the pages.</summary>
public sealed class Session(WebDefenseApi api)
{
    private Task<Me?>? _loading;

    public Me? Current { get; private set; }

    public event Action? Changed;

    /// <summary>The signed-in user, asking the server once; null when nobody is signed in.</summary>
    public async Task<Me?> EnsureAsync()
    {
        if (Current is not null) return Current;
        _loading ??= api.MeAsync();
        try
        {
            Current = await _loading;
        }
        finally
        {
            _loading = null;
        }

        return Current;
    }

    public async Task<Me> LoginAsync(string email, string password)
    {
        Current = await api.LoginAsync(email, password);
        Changed?.Invoke();
        return Current;
    }

    public async Task LogoutAsync()
    {
        await api.LogoutAsync();
        Current = null;
        Changed?.Invoke();
    }
}
